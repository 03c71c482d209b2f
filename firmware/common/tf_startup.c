/*
 * Reset handler shared by the boards: enable the FPU, copy .data, zero .bss, raise the stack
 * guard (tf_stack_guard.c), call main.
 * The vector table is per board (boards/<name>/vectors.c) since IRQ lines differ.
 */
#include <stdint.h>

#include "tf_cortexm.h"
#include "tf_stack_guard.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
int main(void);
void Reset_Handler(void);

void Reset_Handler(void)
{
    /* FPU first: -mfloat-abi=hard code may touch VFP registers anywhere after this. */
    SCB_CPACR |= (0xFu << 20); /* CP10 and CP11 full access */
    tf_dsb();
    tf_isb();
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0;
    }
    tf_stack_guard_init();
    main();
    for (;;) {
    }
}

void Default_Handler(void);
void Default_Handler(void)
{
    /* An interrupt nobody expects: make it a fault so the host hears about it. */
    __asm__ volatile("udf #1");
}
