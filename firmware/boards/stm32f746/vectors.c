/*
 * Vector table for the STM32F746: 16 system entries + 98 interrupt lines (RM0385 table 40).
 * Only USART3 (IRQ 39) is used; every other line goes to Default_Handler, which faults, so a
 * stray interrupt shows up on the host as a FAULT frame.
 *
 * 114 entries = 456 bytes: VTOR needs the table aligned to the next power of two (512), which
 * the linker gives it by placing .isr_vector first at 0x0800_0000.
 */
#include "tf_vectors.h"

#define STM32F746_IRQS 98
#define USART3_IRQ 39

void USART3_IRQHandler(void);

__attribute__((section(".isr_vector"), used))
const tf_vector_t tf_vector_table[16 + STM32F746_IRQS] = {
    TF_SYSTEM_VECTORS,
    [16 ... 16 + USART3_IRQ - 1] = Default_Handler,
    [16 + USART3_IRQ] = USART3_IRQHandler,
    [16 + USART3_IRQ + 1 ... 16 + STM32F746_IRQS - 1] = Default_Handler,
};
