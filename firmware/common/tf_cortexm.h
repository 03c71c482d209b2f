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

/* Fault status (ARMv7-M ARM B3.2.15): SHCSR enables the configurable faults, CFSR says what
 * went wrong. MSTKERR / STKERR: pushing the exception frame failed, so the frame is not there;
 * MMARVALID / BFARVALID: MMFAR / BFAR hold the faulting data address. */
#define SCB_SHCSR TF_REG(0xE000ED24u)
#define SHCSR_MEMFAULTENA (1u << 16)
#define CFSR_MSTKERR (1u << 4)
#define CFSR_MMARVALID (1u << 7)
#define CFSR_STKERR (1u << 12)
#define CFSR_BFARVALID (1u << 15)
/* EXC_RETURN bit 2: the frame is on the PSP; bit 4 clear: it has the FP state (26 words). */
#define EXC_RETURN_SPSEL (1u << 2)
#define EXC_RETURN_FTYPE (1u << 4)
#define XPSR_STKALIGN (1u << 9) /* stacked xPSR: a padding word was pushed to align the frame */

/* PMSAv7 MPU (ARMv7-M ARM B3.5). A region is 2^(SIZE+1) bytes (32 B .. 4 GB) aligned to its
 * size; AP = 000 forbids every access, privileged included. PRIVDEFENA keeps the default
 * memory map for privileged code wherever no region matches; HFNMIENA stays 0, so the MPU is
 * off while the HardFault handler runs. */
#define MPU_TYPE TF_REG(0xE000ED90u)
#define MPU_CTRL TF_REG(0xE000ED94u)
#define MPU_RNR TF_REG(0xE000ED98u)
#define MPU_RBAR TF_REG(0xE000ED9Cu)
#define MPU_RASR TF_REG(0xE000EDA0u)
#define MPU_TYPE_DREGION(type) (((type) >> 8) & 0xFFu)
#define MPU_CTRL_ENABLE (1u << 0)
#define MPU_CTRL_PRIVDEFENA (1u << 2)
#define MPU_RASR_ENABLE (1u << 0)
#define MPU_RASR_SIZE(log2_bytes) (((uint32_t)(log2_bytes) - 1u) << 1)
#define MPU_RASR_AP_NO_ACCESS (0u << 24)
#define MPU_RASR_XN (1u << 28)

#define SYST_CSR TF_REG(0xE000E010u)
#define SYST_RVR TF_REG(0xE000E014u)
#define SYST_CVR TF_REG(0xE000E018u)

#define NVIC_ISER(n) TF_REG(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) TF_REG(0xE000E180u + 4u * (n))
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

/* Masked once this returns: no handler of irq runs after the call. */
static inline void tf_nvic_disable(unsigned irq)
{
    NVIC_ICER(irq / 32u) = 1u << (irq % 32u);
    tf_dsb();
    tf_isb();
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
