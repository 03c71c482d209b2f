/*
 * The MPU stack guard: region 0 covers __stack_guard_start..__stack_guard_end, the address
 * range right below the stack (which starts RAM; sections.ld says why there), with no access
 * and no execution. The MPU runs with PRIVDEFENA, so everything else keeps the default memory
 * map (the firmware runs privileged), and MemManage is enabled so that a guard hit is reported
 * as what it is (CFSR.MMFSR, MMFAR) by tf_fault.c.
 */
#include "tf_stack_guard.h"

#include "tf_cortexm.h"

extern uint32_t __stack_guard_start[], __stack_guard_end[];

#define GUARD_REGION 0u

void tf_stack_guard_init(void)
{
    const uint32_t regions = MPU_TYPE_DREGION(MPU_TYPE);
    if (regions == 0u) {
        return; /* no MPU, no guard: an overflow goes unseen as it did before */
    }
    const uint32_t base = (uint32_t)(uintptr_t)__stack_guard_start;
    const uint32_t size = (uint32_t)((uintptr_t)__stack_guard_end - (uintptr_t)__stack_guard_start);

    tf_dsb();
    MPU_CTRL = 0u;
    /* A core-only reset (a debugger's) keeps the MPU: clear what an earlier image left. */
    for (uint32_t r = 0; r < regions; r++) {
        MPU_RNR = r;
        MPU_RASR = 0u;
    }
    MPU_RNR = GUARD_REGION;
    MPU_RBAR = base; /* the linker asserts it is aligned to the size */
    MPU_RASR = MPU_RASR_XN | MPU_RASR_AP_NO_ACCESS |
               MPU_RASR_SIZE(__builtin_ctz(size)) | MPU_RASR_ENABLE;
    SCB_SHCSR |= SHCSR_MEMFAULTENA;
    MPU_CTRL = MPU_CTRL_PRIVDEFENA | MPU_CTRL_ENABLE;
    tf_dsb();
    tf_isb();
}
