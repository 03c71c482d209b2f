/*
 * tf_sparse_fully_connected_s8_arm.S - the Cortex-M assembly of tf_sparse_fully_connected_s8
 * (Thumb-2 with the DSP extension; assembled to nothing unless TF_ARM_DSP_ASM, tf_dsp.h).
 * Shapes, the block-rle stream, the widened tile layouts and the row table: see
 * tf_sparse_fully_connected_s8.h; the portable C of every routine here: the .c file.
 *
 * Calling convention: AAPCS. Every entry point below takes its arguments in r0-r3, keeps
 * r4-r11 (pushed and popped), may change r0-r3, r12, lr and the flags, and keeps the stack
 * 8-byte aligned; none calls another function. "// stack: <function> <bytes>" gives each
 * entry point's deepest stack use, for the firmware's static stack bound (the Makefile turns
 * these lines into its call-graph file).
 *
 * The tile routines (tf_sfc_tile_b<B>): every row of the matrix against 8 widened tokens.
 * Registers:
 *   r0-r7   the 8 tokens' accumulators (r7 also holds the row's bias before its first block)
 *   r8/r9   the sign-extended weights of the block (B >= 4: SXTB16 pairs of a weight word)
 *   r10/r11 activation pairs of the tile (r10 first holds the gap byte)
 *   r12     s, the tile pointer      lr  p, the stream pointer
 * and a 28-byte frame on the stack for what has no register (tf_sfc_frame_t, the .c file):
 *   [sp] pa, [sp+4] pb        outputs of tokens 0 and 4 for the current row
 *   [sp+8] m-1, [sp+12] 2m-1, [sp+16] 3m-1   the next tokens' outputs after a post-increment
 *   [sp+20] the tile (reloaded into r12 with 3m-1 by the stores)
 *   [sp+24] q, the row's slot in the table: bias_j, kind_j, M_j, rc_j, rq_j
 * Control flow is table driven, so that no row pays for a test of the stream's markers:
 *   LDM q, {r7, pc}: the row's bias into r7 and a jump to its kind (row, empty or exit),
 *     all "probe" until the first tile has looked at the row's first byte;
 *   row: s = the tile (r12); the first block adds into the bias (r7), so nothing is cleared;
 *     then per block: s += gap * bytes-per-block; the weights; 8 tokens x (LDRD + 2 SMLAD)
 *     per 4 weights; the next gap; loop while it is not 0xFF;
 *   LDM q!, {.., M, rc, pc}: the requantization copy for the row's shift (tf_sfc_rq<sh>):
 *     8 x (SMMLA, SSAT #8 with ASR #sh), 8 STRB m apart, then the next row's LDM q, {r7, pc};
 *   empty: the probe computed the row's output v once and made it the row's bias, so later
 *     tiles just store v 8 times (tf_sfc_same).
 * The one-token routines (tf_sfc_one_b<B>, partial tiles) walk the same stream with one
 * accumulator and read bias, multiplier and shift directly (no table needed).
 */
#include "tf_config.h"
#include "tf_dsp.h"

#if TF_ARM_DSP_ASM

/* TF_ROUNDING_TFLITE (tf_config.h): every requantization rounds as TFLite's
 * MultiplyByQuantizedMultiplier, from the same table: h = SRDHM(acc, M) = (acc M + 2^30) >> 31
 * (SMULL, ADDS, ADC, LSL, ORR), then with n = -shift = sh + 1 and 2 rc = (2 zp + 1) 2^(n-1)
 * = 2^(n-1) + zp 2^n: (h + 2 rc - (h < 0)) >> n, the rounding shift with ties away from
 * zero plus zp (the plan keeps |h| + |2 rc| below 2^31). */

    .syntax unified
    .thumb

/* -- the tile routines' pieces ------------------------------------------------------------ */

    /* One group of 4 weights (B >= 4) for the 8 tokens; first: add into the bias in r7. */
    .macro TF_SFC_G4 first
    ldr     r9, [lr], #4
    sxtb16  r8, r9
    sxtb16  r9, r9, ror #8
    .irp t, 0, 1, 2, 3, 4, 5, 6, 7
    ldrd    r10, r11, [r12], #8
    .if \first
    smlad   r\t, r10, r8, r7
    .else
    smlad   r\t, r10, r8, r\t
    .endif
    smlad   r\t, r11, r9, r\t
    .endr
    .endm

    /* B == 2: one word (w0, w1) against tokens a (r10) and b (r11). */
    .macro TF_SFC_P2 a, b, first
    ldrd    r10, r11, [r12], #8
    .if \first
    smlad   r\a, r10, r8, r7
    smlad   r\b, r11, r8, r7
    .else
    smlad   r\a, r10, r8, r\a
    smlad   r\b, r11, r8, r\b
    .endif
    .endm

    /* B == 1: one weight against token pairs (a, b) in r10 and (c, d) in r11. */
    .macro TF_SFC_P1 a, b, c, d, first
    ldrd    r10, r11, [r12], #8
    .if \first
    smlabb  r\a, r10, r8, r7
    smlatb  r\b, r10, r8, r7
    smlabb  r\c, r11, r8, r7
    smlatb  r\d, r11, r8, r7
    .else
    smlabb  r\a, r10, r8, r\a
    smlatb  r\b, r10, r8, r\b
    smlabb  r\c, r11, r8, r\c
    smlatb  r\d, r11, r8, r\d
    .endif
    .endm

    /* One block: skip the gap (in r10), then the block's MACs for the 8 tokens. */
    .macro TF_SFC_BLOCK b, first
    .if \b == 1
    add     r12, r12, r10, lsl #4
    ldrsb   r8, [lr], #1
    TF_SFC_P1 0, 1, 2, 3, \first
    TF_SFC_P1 4, 5, 6, 7, \first
    .elseif \b == 2
    add     r12, r12, r10, lsl #5
    ldrh    r9, [lr], #2
    orr     r9, r9, r9, lsl #8
    sxtb16  r8, r9
    TF_SFC_P2 0, 1, \first
    TF_SFC_P2 2, 3, \first
    TF_SFC_P2 4, 5, \first
    TF_SFC_P2 6, 7, \first
    .elseif \b == 4
    add     r12, r12, r10, lsl #6
    TF_SFC_G4 \first
    .elseif \b == 8
    add     r12, r12, r10, lsl #7
    TF_SFC_G4 \first
    TF_SFC_G4 0
    .else
    add     r12, r12, r10, lsl #8
    TF_SFC_G4 \first
    TF_SFC_G4 0
    TF_SFC_G4 0
    TF_SFC_G4 0
    .endif
    .endm

    /* Store a0..a7 as the 8 tokens' outputs of the row: r9/r10 = pa/pb, the next slot's
     * q (r8) saved, then the next row's bias and kind. The shared tail of the row ends. */
    .macro TF_SFC_STORE a0, a1, a2, a3, a4, a5, a6, a7
    ldmia   sp, {r9, r10, r11, r12}
    strb    \a0, [r9], #1
    strb    \a1, [r9, r11]
    strb    \a2, [r9, r12]
    strb    \a4, [r10], #1
    strb    \a5, [r10, r11]
    strb    \a6, [r10, r12]
    ldrd    r11, r12, [sp, #16]          /* 3m - 1, and the tile for the next row */
    strb    \a3, [r9, r11]
    strb    \a7, [r10, r11]
    strd    r9, r10, [sp]
    str     r8, [sp, #24]
    ldmia   r8, {r7, pc}
    .endm

    /* void <name>(const tf_sfc_frame_t *frame, const uint8_t *stream)
     * r0: the frame's 7 words (copied onto the stack), r1: the stream (after the header).
     * Every row of the matrix against the 8 tokens widened in frame->tile; outputs saturated
     * to int8 (a narrower activation range is the caller's). The table's kind words are
     * code addresses: <name>_probe on the first call, then what the probe found. */
    .macro TF_SFC_TILE name, b
    .balign 4
    .global \name
    .type   \name, %function
    .thumb_func
\name:
    push    {r4-r11, lr}
    sub     sp, sp, #28
    ldmia   r0, {r2-r8}
    stmia   sp, {r2-r8}                  /* the frame */
    mov     r12, r7                      /* the tile */
    mov     lr, r1
    ldmia   r8, {r7, pc}                 /* bias_0, kind_0 */
    /* Probe (the first tile): which kind of row starts here, for the tiles after. */
    .global \name\()_probe
    .type   \name\()_probe, %function
    .thumb_func
\name\()_probe:
    ldrb    r10, [lr]
    cmp     r10, #254
    beq     \name\()_pexit
    bhi     \name\()_pempty
    adr.w   r10, \name\()_row
    orr     r10, r10, #1
    str     r10, [r8, #4]
\name\()_row:                            /* r12: the tile */
    ldrb    r10, [lr], #1
    TF_SFC_BLOCK \b, 1
    ldrb    r10, [lr], #1
    cmp     r10, #255
    beq     \name\()_end
\name\()_loop:
    TF_SFC_BLOCK \b, 0
    ldrb    r10, [lr], #1
    cmp     r10, #255
    bne     \name\()_loop
\name\()_end:
    ldr     r8, [sp, #24]
    ldmia   r8!, {r9, r10, r11, r12, pc} /* bias, kind (done with), M, rc, rq */
    /* An empty row, first tile: v = its output becomes the row's bias, its kind empty. */
\name\()_pempty:
    ldrd    r9, r10, [r8, #8]            /* M, rc */
#if TF_ROUNDING_TFLITE                   /* r0, r1: free (the row stores r7) */
    smull   r0, r1, r7, r9
    adds    r0, r0, #0x40000000
    adc     r1, r1, #0
    lsl     r1, r1, #1
    orr     r1, r1, r0, lsr #31
    add     r0, r1, r10, lsl #1
    sub     r0, r0, r1, lsr #31
    rbit    r11, r10
    clz     r11, r11
    add     r11, r11, #2                 /* n = sh + 1 */
    asr     r0, r0, r11
    ssat    r7, #8, r0
#else
    smmla   r9, r7, r9, r10
    rbit    r11, r10
    clz     r11, r11                     /* sh - 1: rc = (2 zp + 1) 2^(sh - 1) */
    asr     r9, r9, r11
    ssat    r7, #8, r9, asr #1
#endif
    adr.w   r9, \name\()_empty
    orr     r9, r9, #1
    strd    r7, r9, [r8]
\name\()_empty:
    add     lr, lr, #1                   /* its 0xFF */
    add     r8, r8, #20
    b       tf_sfc_same
\name\()_pexit:
    adr.w   r10, \name\()_exit
    orr     r10, r10, #1
    str     r10, [r8, #4]
\name\()_exit:
    add     sp, sp, #28
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .endm

    /* Requantize the 8 accumulators with shift \sh (M in r11, rc in r12; SMMLA, SSAT with
     * ASR #sh), store them, go on to the next row. r8: the next row's slot. */
    .macro TF_SFC_RQ sh
tf_sfc_rq\sh:
#if TF_ROUNDING_TFLITE
    .irp t, 0, 1, 2, 3, 4, 5, 6, 7
    smull   r9, r10, r\t, r11
    adds    r9, r9, #0x40000000
    adc     r10, r10, #0
    lsl     r10, r10, #1
    orr     r10, r10, r9, lsr #31
    add     r9, r10, r12, lsl #1
    sub     r9, r9, r10, lsr #31
    ssat    r\t, #8, r9, asr #(\sh + 1)
    .endr
#else
    .irp t, 0, 1, 2, 3, 4, 5, 6, 7
    smmla   r\t, r\t, r11, r12
    .endr
    .irp t, 0, 1, 2, 3, 4, 5, 6, 7
    ssat    r\t, #8, r\t, asr #\sh
    .endr
#endif
    TF_SFC_STORE r0, r1, r2, r3, r4, r5, r6, r7
    .endm

/* -- the one-token routines --------------------------------------------------------------- */

    /* void <name>(const tf_sfc_one_args_t *args)
     * r0: {bias, out, stream, column, z2, multiplier, shift} (the .c file): one token, whose
     * widened values start at column (the tile's column strides), against every row.
     * Registers: r4 the accumulator, r5 the token's column of the tile, r2 the stream, r1 the
     * token's output row; r0, r12, lr: bias, multiplier, shift; r9: 2 zp + 1; r6-r8, r10,
     * r11 temporaries. Per row: SMMLA with rc = ((2 zp + 1) << sh) >> 1, ASR #sh, SSAT
     * (sh = -1 - shift in [0, 21]: a dead channel, multiplier 0 and shift 0, gives zp too). */
    .macro TF_SFC_ONE name, b
    .balign 4
    .global \name
    .type   \name, %function
    .thumb_func
\name:
    push    {r4-r11, lr}
    ldmia   r0, {r0-r3, r9, r12, lr}     /* bias, out, stream, column, z2, mult, shift */
\name\()_row:
    ldr     r4, [r0], #4
    mov     r5, r3
    ldrb    r6, [r2], #1
    cmp     r6, #254
    bhs     \name\()_special
\name\()_loop:
    .if \b == 1
    add     r5, r5, r6, lsl #4
    ldrsb   r7, [r2], #1
    ldrsh   r10, [r5], #16
    smlabb  r4, r10, r7, r4
    .elseif \b == 2
    add     r5, r5, r6, lsl #5
    ldrh    r7, [r2], #2
    orr     r7, r7, r7, lsl #8
    sxtb16  r7, r7
    ldr     r10, [r5], #32
    smlad   r4, r10, r7, r4
    .else
    .if \b == 4
    add     r5, r5, r6, lsl #6
    .elseif \b == 8
    add     r5, r5, r6, lsl #7
    .else
    add     r5, r5, r6, lsl #8
    .endif
    .rept   \b / 4
    ldr     r7, [r2], #4
    sxtb16  r8, r7
    sxtb16  r7, r7, ror #8
    ldrd    r10, r11, [r5], #64
    smlad   r4, r10, r8, r4
    smlad   r4, r11, r7, r4
    .endr
    .endif
    ldrb    r6, [r2], #1
    cmp     r6, #255
    bne     \name\()_loop
\name\()_requant:
    ldr     r7, [r12], #4
    ldr     r8, [lr], #4
#if TF_ROUNDING_TFLITE
    rsb     r8, r8, #0                   /* n */
    smull   r6, r10, r4, r7
    adds    r6, r6, #0x40000000
    adc     r10, r10, #0
    lsl     r10, r10, #1
    orr     r10, r10, r6, lsr #31        /* h */
    sub     r6, r8, #1
    lsl     r6, r9, r6                   /* (2 zp + 1) 2^(n-1) */
    add     r4, r10, r6
    sub     r4, r4, r10, lsr #31
    asr     r4, r4, r8
#else
    mvn     r8, r8                       /* sh */
    lsl     r6, r9, r8
    asr     r6, r6, #1                   /* rc */
    smmla   r4, r4, r7, r6
    asr     r4, r4, r8
#endif
    ssat    r4, #8, r4
    strb    r4, [r1], #1
    b       \name\()_row
\name\()_special:
    bne     \name\()_requant             /* 0xFF: empty row, the output is the bias's */
    pop     {r4-r11, pc}                 /* 0xFE: end of the matrix */
    .size   \name, . - \name
    .endm

/* -- the routines ------------------------------------------------------------------------- */

    /* One section: the tile routines jump to tf_sfc_same and to tf_sfc_rq<sh>. */
    .pushsection .text.tf_sfc_tiles,"ax",%progbits
// stack: tf_sfc_tile_b1 64
    TF_SFC_TILE tf_sfc_tile_b1, 1
// stack: tf_sfc_tile_b2 64
    TF_SFC_TILE tf_sfc_tile_b2, 2
// stack: tf_sfc_tile_b4 64
    TF_SFC_TILE tf_sfc_tile_b4, 4
// stack: tf_sfc_tile_b8 64
    TF_SFC_TILE tf_sfc_tile_b8, 8
// stack: tf_sfc_tile_b16 64
    TF_SFC_TILE tf_sfc_tile_b16, 16
// stack: tf_sfc_one_b1 36
    TF_SFC_ONE tf_sfc_one_b1, 1
// stack: tf_sfc_one_b2 36
    TF_SFC_ONE tf_sfc_one_b2, 2
// stack: tf_sfc_one_b4 36
    TF_SFC_ONE tf_sfc_one_b4, 4
// stack: tf_sfc_one_b8 36
    TF_SFC_ONE tf_sfc_one_b8, 8
// stack: tf_sfc_one_b16 36
    TF_SFC_ONE tf_sfc_one_b16, 16
    /* An empty row after the first tile: its output v (r7) 8 times; r8 the next slot. */
tf_sfc_same:
    TF_SFC_STORE r7, r7, r7, r7, r7, r7, r7, r7
    .irp    s, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21
    TF_SFC_RQ \s
    .endr
    .popsection

    /* int32_t tf_sfc_fill(const tf_sfc_fill_t *args)
     * r0: {e, multiplier, shift, bias_next, n, z2, kind, rq_table} (the .c file). Writes the
     * table rows {M, rc, rq, next bias, kind} for n >= 1 rows, 12 instructions a row (see
     * plan() in the .c file); returns 1 if every row has the fast form, else 0.
     * Registers: r0 e, r1-r3 multiplier, shift, bias_next, r4 sh - 1, r5 z2, r6 rows left,
     * r7-r11 the row's words, r12 the rq table, lr the result. */
    .pushsection .text.tf_sfc_fill,"ax",%progbits
    .balign 4
    .global tf_sfc_fill
    .type   tf_sfc_fill, %function
    .thumb_func
// stack: tf_sfc_fill 36
tf_sfc_fill:
    push    {r4-r11, lr}
    ldmia   r0, {r0-r3, r6, r11, r12, lr}
    mov     r5, r11                      /* z2; r11: kind, r12: rq table, r6: rows */
    mov     r11, r12
    mov     r12, lr
    mov     lr, #1                       /* fast */
.Lfill_row:
    ldr     r7, [r1], #4                 /* M */
    ldr     r4, [r2], #4
    ldr     r10, [r3], #4                /* next bias */
    mvn     r4, r4
    sub     r4, r4, #1                   /* sh - 1 */
    cmp     r4, #20
    bhi     .Lfill_odd
.Lfill_put:
    lsl     r8, r5, r4                   /* rc */
    ldr     r9, [r12, r4, lsl #2]        /* rq */
    stmia   r0!, {r7-r11}
    subs    r6, r6, #1
    bne     .Lfill_row
    mov     r0, lr
    pop     {r4-r11, pc}
.Lfill_odd:                              /* only a dead channel (M = 0, sh <= 21) stays fast */
    cmn     r4, #1
    it      ne
    movne   lr, #0
    cmp     r7, #0
    it      ne
    movne   lr, #0
    movs    r4, #0
    b       .Lfill_put
    .size   tf_sfc_fill, . - tf_sfc_fill
    .popsection

/* -- widening a tile's activations (layouts: the header) ---------------------------------- */

    .macro TF_SFC_W4 r
    sxtb16  r12, \r
    sxtb16  \r, \r, ror #8
    strd    r12, \r, [r1], #64
    .endm

    /* void tf_sfc_widen4(const int8_t *src, uint32_t *dst, int32_t groups)
     * r0 src, r1 dst, r2 groups > 0: one token's groups of 4 bytes -> SXTB16 pairs at dst,
     * 64 bytes (8 tokens x 2 words) apart; 8 groups per iteration (one LDM when src is
     * aligned, as the conv's NHWC rows are), then one at a time. r3-r10: 8 groups' words. */
    .pushsection .text.tf_sfc_widen4,"ax",%progbits
    .balign 4
    .global tf_sfc_widen4
    .type   tf_sfc_widen4, %function
    .thumb_func
// stack: tf_sfc_widen4 28
tf_sfc_widen4:
    push    {r4-r10}
    subs    r2, r2, #8
    blt     .Lw4_rest
    tst     r0, #3
    bne     .Lw4_unaligned
.Lw4_aligned:
    ldmia   r0!, {r3-r10}
    .irp    r, r3, r4, r5, r6, r7, r8, r9, r10
    TF_SFC_W4 \r
    .endr
    subs    r2, r2, #8
    bge     .Lw4_aligned
    b       .Lw4_rest
.Lw4_unaligned:
    .irp    r, r3, r4, r5, r6, r7, r8, r9, r10
    ldr     \r, [r0], #4
    .endr
    .irp    r, r3, r4, r5, r6, r7, r8, r9, r10
    TF_SFC_W4 \r
    .endr
    subs    r2, r2, #8
    bge     .Lw4_unaligned
.Lw4_rest:
    adds    r2, r2, #8
    beq     .Lw4_done
.Lw4_one:
    ldr     r3, [r0], #4
    TF_SFC_W4 r3
    subs    r2, r2, #1
    bne     .Lw4_one
.Lw4_done:
    pop     {r4-r10}
    bx      lr
    .size   tf_sfc_widen4, . - tf_sfc_widen4
    .popsection

    /* void tf_sfc_widen8(const int8_t *x, int32_t k, int32_t groups, uint32_t *dst)
     * r0 x, r1 k, r2 groups > 0, r3 dst: 8 tokens k apart, B >= 4 layout; per group the
     * tokens' 16 words are contiguous: per two tokens 2 LDR, 4 SXTB16, one STM.
     * Registers: r4-r7 tokens 0, 2, 4, 6 (odd tokens: +k, r8), r9 dst, r10 the end of token
     * 0's groups, r0-r3 two tokens' pairs. */
    .pushsection .text.tf_sfc_widen8,"ax",%progbits
    .balign 4
    .global tf_sfc_widen8
    .type   tf_sfc_widen8, %function
    .thumb_func
// stack: tf_sfc_widen8 28
tf_sfc_widen8:
    push    {r4-r10}
    mov     r4, r0                       /* token 0 (tokens 2, 4, 6: r5-r7; odd: +k) */
    add     r5, r0, r1, lsl #1
    add     r6, r5, r1, lsl #1
    add     r7, r6, r1, lsl #1
    mov     r8, r1
    mov     r9, r3
    add     r10, r0, r2, lsl #2
.Lw8_loop:
    .irp    b, 4, 5, 6, 7
    ldr     r3, [r\b, r8]
    ldr     r1, [r\b], #4
    sxtb16  r0, r1
    sxtb16  r1, r1, ror #8
    sxtb16  r2, r3
    sxtb16  r3, r3, ror #8
    stmia   r9!, {r0-r3}
    .endr
    cmp     r4, r10
    bne     .Lw8_loop
    pop     {r4-r10}
    bx      lr
    .size   tf_sfc_widen8, . - tf_sfc_widen8
    .popsection

    /* void tf_sfc_widen2(const int8_t *src, uint32_t *dst, int32_t groups)
     * r0 src, r1 dst, r2 groups > 0: one token, B == 2 layout: (x0, x1) at dst and (x2, x3)
     * 32 bytes on (SXTB16 both ways, PKHBT, PKHTB), 64 bytes per group. */
    .pushsection .text.tf_sfc_widen2,"ax",%progbits
    .balign 4
    .global tf_sfc_widen2
    .type   tf_sfc_widen2, %function
    .thumb_func
// stack: tf_sfc_widen2 4
tf_sfc_widen2:
    push    {r4}
.Lw2_loop:
    ldr     r3, [r0], #4
    sxtb16  r12, r3, ror #8              /* (x1, x3) */
    sxtb16  r3, r3                       /* (x0, x2) */
    pkhbt   r4, r3, r12, lsl #16         /* (x0, x1) */
    pkhtb   r12, r12, r3, asr #16        /* (x2, x3) */
    str     r12, [r1, #32]
    str     r4, [r1], #64
    subs    r2, r2, #1
    bne     .Lw2_loop
    pop     {r4}
    bx      lr
    .size   tf_sfc_widen2, . - tf_sfc_widen2
    .popsection

    /* void tf_sfc_widen1(const int8_t *a, const int8_t *b, uint32_t *dst, int32_t groups)
     * r0 a, r1 b, r2 dst, r3 groups > 0: tokens a and b, B == 1 layout: column i of a group,
     * (a_i, b_i), at dst + 16 i, 64 bytes per group. */
    .pushsection .text.tf_sfc_widen1,"ax",%progbits
    .balign 4
    .global tf_sfc_widen1
    .type   tf_sfc_widen1, %function
    .thumb_func
// stack: tf_sfc_widen1 16
tf_sfc_widen1:
    push    {r4-r7}
.Lw1_loop:
    ldr     r4, [r0], #4
    ldr     r5, [r1], #4
    sxtb16  r6, r4, ror #8               /* (a1, a3) */
    sxtb16  r4, r4                       /* (a0, a2) */
    sxtb16  r7, r5, ror #8               /* (b1, b3) */
    sxtb16  r5, r5                       /* (b0, b2) */
    pkhtb   r12, r5, r4, asr #16         /* (a2, b2) */
    pkhbt   r4, r4, r5, lsl #16          /* (a0, b0) */
    pkhtb   r5, r7, r6, asr #16          /* (a3, b3) */
    pkhbt   r6, r6, r7, lsl #16          /* (a1, b1) */
    str     r5, [r2, #48]
    str     r12, [r2, #32]
    str     r6, [r2, #16]
    str     r4, [r2], #64
    subs    r3, r3, #1
    bne     .Lw1_loop
    pop     {r4-r7}
    bx      lr
    .size   tf_sfc_widen1, . - tf_sfc_widen1
    .popsection

    /* rq_j of the table: the requantization code per shift (Thumb: + 1). */
    .pushsection .rodata.tf_sfc_rq_table,"a",%progbits
    .balign 4
    .global tf_sfc_rq_table
tf_sfc_rq_table:
    .irp    s, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21
    .word   tf_sfc_rq\s + 1
    .endr
    .popsection

#endif /* TF_ARM_DSP_ASM */

/* A host build links this (empty) object too: no executable stack. */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
