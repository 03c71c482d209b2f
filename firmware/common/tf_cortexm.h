/*
 * tf_cortexm.h - the few Armv7-M system registers TinyFormer touches (ARMv7-M ARM, B3).
 * Written here because CMSIS is not a dependency.
 */
#ifndef TF_CORTEXM_H
#define TF_CORTEXM_H

#include <stdint.h>

#define TF_REG(addr) (*(volatile uint32_t *)(addr))

#define SCB_CPACR TF_REG(0xE000ED88u)
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
