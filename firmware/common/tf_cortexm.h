/*
 * tf_cortexm.h - the few Armv7-M system registers TinyFormer touches (ARMv7-M ARM, B3).
 * Written here because CMSIS is not a dependency.
 */
#ifndef TF_CORTEXM_H
#define TF_CORTEXM_H

#include <stdint.h>

#define TF_REG(addr) (*(volatile uint32_t *)(addr))

#define SCB_CPACR TF_REG(0xE000ED88u)
#define SCB_ICSR TF_REG(0xE000ED04u)
#define ICSR_PENDSTCLR (1u << 25)
#define SCB_AIRCR TF_REG(0xE000ED0Cu)
#define SCB_CCR TF_REG(0xE000ED14u)
#define SCB_CFSR TF_REG(0xE000ED28u)
#define SCB_HFSR TF_REG(0xE000ED2Cu)
#define SCB_MMFAR TF_REG(0xE000ED34u)
#define SCB_BFAR TF_REG(0xE000ED38u)
#define SCB_VTOR TF_REG(0xE000ED08u)

#define SYST_CSR TF_REG(0xE000E010u)
#define SYST_RVR TF_REG(0xE000E014u)
#define SYST_CVR TF_REG(0xE000E018u)

#define NVIC_ISER(n) TF_REG(0xE000E100u + 4u * (n))
#define NVIC_IPR_BYTE(irq) (*(volatile uint8_t *)(0xE000E400u + (irq)))

/* Cortex-M7 L1 caches (ARMv7-M ARM B2.2.7 and the Cortex-M7 TRM): cache id, selection and
 * maintenance operations; CCR.IC / CCR.DC switch the caches on. */
#define SCB_CLIDR TF_REG(0xE000ED78u)
#define SCB_CCSIDR TF_REG(0xE000ED80u)
#define SCB_CSSELR TF_REG(0xE000ED84u)
#define SCB_ICIALLU TF_REG(0xE000EF50u) /* write: invalidate the whole I-cache */
#define SCB_DCISW TF_REG(0xE000EF60u)   /* write: invalidate one D-cache line by set/way */
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)

/* Debug: DHCSR tells whether a debugger is attached; DEMCR.TRCENA powers DWT. */
#define DCB_DHCSR TF_REG(0xE000EDF0u)
#define DCB_DEMCR TF_REG(0xE000EDFCu)
#define DHCSR_C_DEBUGEN (1u << 0)
#define DEMCR_TRCENA (1u << 24)

/* DWT cycle counter; on the Cortex-M7 the DWT is locked until LAR gets the CoreSight key. */
#define DWT_CTRL TF_REG(0xE0001000u)
#define DWT_CYCCNT TF_REG(0xE0001004u)
#define DWT_LAR TF_REG(0xE0001FB0u)
#define DWT_LAR_KEY 0xC5ACCE55u
#define DWT_CTRL_CYCCNTENA (1u << 0)

#define AIRCR_VECTKEY (0x05FAu << 16)
#define AIRCR_SYSRESETREQ (1u << 2)

static inline void tf_dsb(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }
static inline void tf_isb(void) { __asm__ volatile("isb 0xF" ::: "memory"); }
static inline void tf_enable_irq(void) { __asm__ volatile("cpsie i" ::: "memory"); }

static inline void tf_nvic_enable(unsigned irq)
{
    NVIC_ISER(irq / 32u) = 1u << (irq % 32u);
}

static inline void __attribute__((noreturn)) tf_system_reset(void)
{
    tf_dsb();
    SCB_AIRCR = AIRCR_VECTKEY | AIRCR_SYSRESETREQ;
    tf_dsb();
    for (;;) {
    }
}

#endif /* TF_CORTEXM_H */
