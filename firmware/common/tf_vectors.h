/*
 * tf_vectors.h - the Cortex-M system exception handlers every board's vector table lists.
 * Unused entries point at Default_Handler (tf_startup.c), which faults.
 */
#ifndef TF_VECTORS_H
#define TF_VECTORS_H

#include <stdint.h>

typedef void (*tf_vector_t)(void);

extern uint32_t __stack_top[];
void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void SysTick_Handler(void); /* each board defines it */

/* The 16 architectural entries: initial SP, reset, NMI .. SysTick. */
#define TF_SYSTEM_VECTORS                                                                        \
    (tf_vector_t) __stack_top, Reset_Handler, Default_Handler, HardFault_Handler,                \
        HardFault_Handler, HardFault_Handler, HardFault_Handler, 0, 0, 0, 0, Default_Handler,    \
        Default_Handler, 0, Default_Handler, SysTick_Handler

#endif /* TF_VECTORS_H */
