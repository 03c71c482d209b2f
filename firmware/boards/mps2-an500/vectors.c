/* Vector table for mps2-an500: UART0 RX is IRQ 0 (QEMU hw/arm/mps2.c). */
#include "tf_vectors.h"

void UART0RX_Handler(void);

__attribute__((section(".isr_vector"), used)) const tf_vector_t tf_vector_table[16 + 32] = {
    TF_SYSTEM_VECTORS,
    [16 + 0] = UART0RX_Handler,
    [16 + 1 ... 16 + 31] = Default_Handler,
};
