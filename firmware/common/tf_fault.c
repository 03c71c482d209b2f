/*
 * HardFault handler: report the faulting context over serial as a FAULT frame, then stop.
 * Configurable faults escalate to HardFault (they are not enabled separately), so this one
 * handler sees every fault; CFSR says which kind it was.
 */
#include "tf_board.h"
#include "tf_cortexm.h"
#include "tf_protocol.h"

void tf_fault_report(const uint32_t *frame, uint32_t exc_return);

void tf_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint8_t p[32];
    (void)exc_return;
    tf_put_u32(p + 0, frame[6]); /* stacked PC */
    tf_put_u32(p + 4, frame[5]); /* stacked LR */
    tf_put_u32(p + 8, (uint32_t)(uintptr_t)(frame + 8));
    tf_put_u32(p + 12, frame[7]); /* stacked xPSR */
    tf_put_u32(p + 16, SCB_CFSR);
    tf_put_u32(p + 20, SCB_HFSR);
    tf_put_u32(p + 24, SCB_MMFAR);
    tf_put_u32(p + 28, SCB_BFAR);
    tf_frame_send(TF_MSG_FAULT, 0, p, sizeof p);
    board_halt();
}

/* Pick the stack the exception frame was pushed on (EXC_RETURN bit 2), then report. */
void __attribute__((naked)) HardFault_Handler(void)
{
    __asm__ volatile("tst lr, #4\n"
                     "ite eq\n"
                     "mrseq r0, msp\n"
                     "mrsne r0, psp\n"
                     "mov r1, lr\n"
                     "b tf_fault_report\n");
}
