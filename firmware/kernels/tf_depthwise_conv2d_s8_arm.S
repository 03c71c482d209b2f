/*
 * tf_depthwise_conv2d_s8_arm.S - the Cortex-M assembly of tf_depthwise_conv2d_s8 (Thumb-2
 * with the DSP extension; assembles to nothing unless TF_ARM_DSP_ASM, tf_dsp.h): the groups
 * of four channels over a window's valid taps, and the requant table's requantization.
 * Shapes, the widened weights and the formula: tf_depthwise_conv2d_s8.h; the window
 * (span_t) and the portable C of both routines: tf_depthwise_conv2d_s8.c.
 *
 * Calling convention: AAPCS. Both entry points take their arguments in r0-r3 (then on the
 * stack, from [sp] on entry), keep r4-r11 (pushed and popped), change r0-r3, r12, lr and the
 * flags, and call nothing. "// stack: <function> <bytes>": the entry point's deepest stack
 * use, for the firmware's static stack bound.
 */
#include "tf_config.h"
#include "tf_dsp.h"

#if TF_ARM_DSP_ASM

    .syntax unified
    .thumb

/* -- the taps ------------------------------------------------------------------------------
 *
 * void tf_dw_dot_groups(const int8_t *x, const uint32_t *w, const int32_t *bias,
 *                       int32_t *acc, int32_t groups, int32_t ch, const span_t *sp,
 *                       int32_t zp)
 * r0 x (the first valid tap's inputs, first channel), r1 w (its widened weights, first
 * group), r2 bias, r3 acc; [sp] groups (> 0), [sp + 4] ch (bytes per pixel), [sp + 8] the
 * window span_t {rows, taps, x_step, w_skip, w_back} (> 0 rows and taps), [sp + 12] the input
 * zero point. acc[4 g + i] = bias[4 g + i] + the channels' dot products over the valid taps:
 * x steps by ch a tap, by x_step a row, by 4 a group; w by a tap's 8 bytes, by w_skip a row,
 * by w_back a group.
 *
 * One tap of four channels (TAP4): the inputs' word, x - zp as halfword pairs (SXTAB16 adds
 * the packed -zp while it sign-extends, so the zero point costs nothing), the tap's weights
 * (one LDRD that moves w on), one SMLABB / SMLATT per channel: 8 instructions. Three ways to
 * walk a window: a whole 3x3 or 5x5 window unrolled (8 instructions a tap; the 5x5 layers are
 * about half of a CIFAR-scale model's instructions); rows of up to 8 taps entered part way
 * into 8 unrolled taps (ADD PC; 9 a tap, 6 a row); longer rows a loop (11 a tap).
 * Registers: r0 x, r1 w, r2 ch, r3 x_step (whole windows) or the taps left (long rows), r4-r7
 * the four channels' accumulators, r8 the inputs' word (then its odd pairs), r9 / r10 the
 * weights, r11 the even pairs, r12 (-zp, -zp), lr the rows left (3 ch in a whole 5x5
 * window). The frame holds the rest:
 */
#define F_BIAS 0                         /* bias of the next group */
#define F_ACC 4                          /* acc of the next group */
#define F_ACC_END 8                      /* acc + 4 groups */
#define F_X_BACK 12                      /* a group's x: from after its last row to the next */
#define F_ENTRY 16                       /* rows of up to 8 taps: bytes of taps skipped;
                                          * longer rows: taps */
#define F_X_SKIP 20                      /* x_step - taps ch: the end of a row to the next */
#define F_W_SKIP 24
#define F_W_BACK 28
#define F_ROWS 32
#define FRAME 36                         /* + the 36 pushed: the arguments at [sp + 72] */
#define A_GROUPS (FRAME + 36)
#define A_CH (FRAME + 40)
#define A_SPAN (FRAME + 44)
#define A_ZP (FRAME + 48)
#define TAP_BYTES 36                     /* TAPW: 9 instructions, all 32-bit */
#define UNROLL 8

    /* One tap of 4 channels, its inputs' word loaded by \ldr from \addr. */
    .macro TAP4 ldr, addr:vararg
    \ldr    r8, \addr
    ldrd    r9, r10, [r1], #8
    sxtab16 r11, r12, r8
    sxtab16 r8, r12, r8, ror #8
    smlabb  r4, r11, r9, r4
    smlatt  r6, r11, r9, r6
    smlabb  r5, r8, r10, r5
    smlatt  r7, r8, r10, r7
    .endm

    /* A whole row of a 3x3 window: inputs at x, x + ch, x + 2 ch, weights one after the
     * other. */
    .macro ROW3
    TAP4    ldr, [r0]
    TAP4    ldr, [r0, r2]
    TAP4    ldr, [r0, r2, lsl #1]
    .endm

    /* A whole row of a 5x5 window: inputs at x + 0..4 ch (3 ch in lr). */
    .macro ROW5
    ROW3
    TAP4    ldr, [r0, lr]
    TAP4    ldr, [r0, r2, lsl #2]
    .endm

    /* A group starts from its bias, ends in acc (the frame's pointers move on by 4
     * channels); x moves on by X_BACK. The loop is back to label \loop until acc_end. */
    .macro GROUP_BEGIN
    ldr     r8, [sp, #F_BIAS]
    ldrd    r4, r5, [r8], #16
    ldrd    r6, r7, [r8, #-8]
    str     r8, [sp, #F_BIAS]
    .endm

    .macro GROUP_END loop
    ldr     r8, [sp, #F_X_BACK]
    add     r0, r0, r8
    ldr     r8, [sp, #F_ACC]
    strd    r4, r5, [r8], #16
    strd    r6, r7, [r8, #-8]
    str     r8, [sp, #F_ACC]
    ldr     r9, [sp, #F_ACC_END]
    cmp     r8, r9
    bne     \loop
    .endm

    .pushsection .text.tf_dw_dot_groups,"ax",%progbits
    .balign 4
    .global tf_dw_dot_groups
    .type   tf_dw_dot_groups, %function
    .thumb_func
// stack: tf_dw_dot_groups 72
tf_dw_dot_groups:
    push    {r4-r11, lr}
    sub     sp, sp, #FRAME
    ldr     r4, [sp, #A_GROUPS]
    strd    r2, r3, [sp, #F_BIAS]
    add     r4, r3, r4, lsl #4
    str     r4, [sp, #F_ACC_END]
    ldr     r2, [sp, #A_CH]
    ldr     r12, [sp, #A_ZP]
    ldr     r3, [sp, #A_SPAN]
    rsb     r12, r12, #0
    pkhbt   r12, r12, r12, lsl #16       /* (-zp, -zp) */
    ldm     r3, {r6-r10}                 /* rows, taps, x_step, w_skip, w_back */
    cmp     r6, #5
    beq     .Ldw_5rows
    cmp     r6, #3
    bne     .Ldw_rows
    cmp     r7, #3
    bne     .Ldw_rows
    orrs    r11, r9, r10
    bne     .Ldw_rows
    mov     r3, r8                       /* a whole 3x3 window: x_step in r3 */
    lsl     r11, r8, #1
    rsb     r11, r11, #4
    str     r11, [sp, #F_X_BACK]
.Ldw_3x3:
    GROUP_BEGIN
    ROW3
    add     r0, r0, r3
    ROW3
    add     r0, r0, r3
    ROW3
    GROUP_END .Ldw_3x3
    add     sp, sp, #FRAME
    pop     {r4-r11, pc}

.Ldw_5rows:                              /* a whole 5x5 window (none of k > 5): unrolled */
    cmp     r7, #5
    bne     .Ldw_rows
    orrs    r11, r9, r10
    bne     .Ldw_rows
    mov     r3, r8                       /* x_step in r3, 3 ch in lr */
    add     lr, r2, r2, lsl #1
    lsl     r11, r8, #2
    rsb     r11, r11, #4
    str     r11, [sp, #F_X_BACK]
.Ldw_5x5:
    GROUP_BEGIN
    ROW5
    add     r0, r0, r3
    ROW5
    add     r0, r0, r3
    ROW5
    add     r0, r0, r3
    ROW5
    add     r0, r0, r3
    ROW5
    GROUP_END .Ldw_5x5
    add     sp, sp, #FRAME
    pop     {r4-r11, pc}

.Ldw_rows:                               /* r6 rows, r7 taps, r8 x_step, r9 w_skip, r10 w_back */
    mul     r11, r6, r8
    rsb     r11, r11, #4
    str     r11, [sp, #F_X_BACK]
    mls     r11, r7, r2, r8
    str     r11, [sp, #F_X_SKIP]
    strd    r9, r10, [sp, #F_W_SKIP]
    str     r6, [sp, #F_ROWS]
    cmp     r7, #UNROLL
    bgt     .Ldw_long
    rsb     r11, r7, #UNROLL
    mov     r9, #TAP_BYTES
    mul     r11, r11, r9
    str     r11, [sp, #F_ENTRY]
.Ldw_group:
    GROUP_BEGIN
    ldr     lr, [sp, #F_ROWS]
.Ldw_row:
    ldr     r8, [sp, #F_ENTRY]
    add     pc, r8                       /* pc reads as this add + 4: the first tap */
    nop
.Ldw_taps:
    .rept   UNROLL
    TAP4    ldr.w, [r0]
    add.w   r0, r0, r2
    .endr
.Ldw_taps_end:
    .if (.Ldw_taps_end - .Ldw_taps) != TAP_BYTES * UNROLL
    .error "unrolled taps of unexpected size"
    .endif
    ldr     r8, [sp, #F_X_SKIP]
    add     r0, r0, r8
    ldr     r8, [sp, #F_W_SKIP]
    add     r1, r1, r8
    subs    lr, lr, #1
    bne     .Ldw_row
    ldr     r8, [sp, #F_W_BACK]
    add     r1, r1, r8
    GROUP_END .Ldw_group
    add     sp, sp, #FRAME
    pop     {r4-r11, pc}

.Ldw_long:                               /* rows of more than UNROLL taps: a tap a step */
    str     r7, [sp, #F_ENTRY]
.Ldw_long_group:
    GROUP_BEGIN
    ldr     lr, [sp, #F_ROWS]
.Ldw_long_row:
    ldr     r3, [sp, #F_ENTRY]
.Ldw_long_tap:
    TAP4    ldr, [r0]
    add     r0, r0, r2
    subs    r3, r3, #1
    bne     .Ldw_long_tap
    ldr     r8, [sp, #F_X_SKIP]
    add     r0, r0, r8
    ldr     r8, [sp, #F_W_SKIP]
    add     r1, r1, r8
    subs    lr, lr, #1
    bne     .Ldw_long_row
    ldr     r8, [sp, #F_W_BACK]
    add     r1, r1, r8
    GROUP_END .Ldw_long_group
    add     sp, sp, #FRAME
    pop     {r4-r11, pc}
    .size   tf_dw_dot_groups, . - tf_dw_dot_groups
    .popsection

/* -- the requant table's requantization ----------------------------------------------------
 *
 * void tf_dw_requant_pairs(const int32_t *acc, const int32_t *table, int8_t *out,
 *                          int32_t pairs)
 * r0 acc, r1 the table ({M, lo, hi, sh} per channel), r2 out, r3 pairs (> 0):
 * out[i] = SSAT8(((hi_i:lo_i + acc[i] * M_i) >> 32) >> sh_i) for 2 * pairs channels; 12
 * instructions a pair, every register in use.
 */
    .pushsection .text.tf_dw_requant_pairs,"ax",%progbits
    .balign 4
    .global tf_dw_requant_pairs
    .type   tf_dw_requant_pairs, %function
    .thumb_func
// stack: tf_dw_requant_pairs 36
tf_dw_requant_pairs:
    push    {r4-r11, lr}
#if TF_ROUNDING_TFLITE
    /* {M, c, n, 0} per channel (intmath.tflite_requant_table): h = SRDHM(acc, M) =
     * (acc M + 2^30) >> 31, then SSAT8((h + c - (h < 0)) >> n); one channel a step. */
    lsl     r3, r3, #1
2:
    ldr     r4, [r0], #4
    ldmia   r1!, {r5-r8}                 /* M c n 0 */
    smull   r9, r10, r4, r5
    adds    r9, r9, #0x40000000
    adc     r10, r10, #0
    lsl     r10, r10, #1
    orr     r10, r10, r9, lsr #31
    add     r9, r10, r6
    sub     r9, r9, r10, lsr #31
    asr     r9, r9, r7
    ssat    r9, #8, r9
    strb    r9, [r2], #1
    subs    r3, r3, #1
    bne     2b
    pop     {r4-r11, pc}
#endif
1:
    ldmia   r0!, {r4, r5}
    ldmia   r1!, {r6-r12, lr}            /* M0 lo0 hi0 sh0 M1 lo1 hi1 sh1 */
    smlal   r7, r8, r4, r6
    smlal   r11, r12, r5, r10
    asr     r8, r8, r9
    asr     r12, r12, lr
    ssat    r8, #8, r8
    ssat    r12, #8, r12
    strb    r8, [r2], #1
    strb    r12, [r2], #1
    subs    r3, r3, #1
    bne     1b
    pop     {r4-r11, pc}
    .size   tf_dw_requant_pairs, . - tf_dw_requant_pairs
    .popsection

#endif /* TF_ARM_DSP_ASM */

/* A host build links this (empty) object too: no executable stack. */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
