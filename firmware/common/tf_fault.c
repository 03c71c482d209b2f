/*
 * Fault reporting: HardFault, MemManage, BusFault and UsageFault all enter HardFault_Handler
 * (the vector tables point them there), which reports the faulting context over serial as a
 * FAULT frame (u32 pc, lr, sp, xpsr, cfsr, hfsr, mmfar, bfar) and then stops.
 *
 * The report runs on its own small stack. After a stack overflow SP points into the MPU guard
 * (tf_stack_guard.c): a handler that pushed a single register there would fault again, and
 * the host would get a cut-off report or none. When the core could not push the exception
 * frame either (MSTKERR / STKERR), pc, lr and xpsr are unknown: they are sent as 0 and sp is
 * where the core tried to push. The host tells a stack overflow from these values and the
 * guard's address in the ELF (tinyformer.hil.protocol.FaultInfo.describe).
 */
#include "tf_board.h"
#include "tf_cortexm.h"
#include "tf_protocol.h"

/* The reporter's deepest call chain (tf_frame_send, COBS, CRC, board_putc/halt) takes 72 B at
 * -O2 on both boards; the host checks every build against this size (tinyformer.compiler.stackusage
 * reads it from the symbol's size). */
#define FAULT_STACK_BYTES 128
#define TF_STR2(x) #x
#define TF_STR(x) TF_STR2(x)

extern uint32_t __stack_limit[], __stack_top[];

static __attribute__((used, aligned(8))) uint8_t tf_fault_stack[FAULT_STACK_BYTES];

void tf_fault_report(uint32_t msp, uint32_t psp, uint32_t exc_return) __attribute__((noreturn));

/* Read the exception frame only if the core pushed it (no MSTKERR / STKERR) and it lies in
 * the stack: after an overflow it would be in the guard, where a read faults again. */
static int frame_readable(uint32_t frame, uint32_t cfsr)
{
    if (cfsr & (CFSR_MSTKERR | CFSR_STKERR)) {
        return 0;
    }
    return frame >= (uint32_t)(uintptr_t)__stack_limit &&
           frame <= (uint32_t)(uintptr_t)__stack_top - 32u;
}

void tf_fault_report(uint32_t msp, uint32_t psp, uint32_t exc_return)
{
    static int reporting;
    if (reporting) { /* faulted while reporting: the first report is all there is */
        board_halt();
    }
    reporting = 1;

    const uint32_t cfsr = SCB_CFSR;
    const uint32_t frame = (exc_return & EXC_RETURN_SPSEL) ? psp : msp;
    uint32_t pc = 0, lr = 0, xpsr = 0, sp = frame;
    if (frame_readable(frame, cfsr)) {
        const uint32_t *f = (const uint32_t *)(uintptr_t)frame;
        lr = f[5];
        pc = f[6];
        xpsr = f[7];
        /* SP before the exception: above the frame (8 words, 26 with the FP state) and the
         * alignment word the core may have added. */
        sp = frame + ((exc_return & EXC_RETURN_FTYPE) ? 32u : 104u) +
             ((xpsr & XPSR_STKALIGN) ? 4u : 0u);
    }
    uint8_t p[32];
    tf_put_u32(p + 0, pc);
    tf_put_u32(p + 4, lr);
    tf_put_u32(p + 8, sp);
    tf_put_u32(p + 12, xpsr);
    tf_put_u32(p + 16, cfsr);
    tf_put_u32(p + 20, SCB_HFSR);
    tf_put_u32(p + 24, SCB_MMFAR);
    tf_put_u32(p + 28, SCB_BFAR);
    /* A frame delimiter first: the fault may have cut a reply off mid-frame, and the host
     * would otherwise read that fragment and the FAULT frame as one damaged frame. */
    board_putc(0);
    tf_frame_send(TF_MSG_FAULT, 0, p, sizeof p);
    board_halt();
}

/* Naked: not one push on the faulting stack. Hand the reporter both stack pointers and
 * EXC_RETURN, switch to the fault stack and go; nothing returns from here. */
void __attribute__((naked)) HardFault_Handler(void)
{
    __asm__ volatile("mov r0, sp\n"
                     "mrs r1, psp\n"
                     "mov r2, lr\n"
                     "movw r3, #:lower16:tf_fault_stack+" TF_STR(FAULT_STACK_BYTES) "\n"
                     "movt r3, #:upper16:tf_fault_stack+" TF_STR(FAULT_STACK_BYTES) "\n"
                     "mov sp, r3\n"
                     "b tf_fault_report\n");
}
