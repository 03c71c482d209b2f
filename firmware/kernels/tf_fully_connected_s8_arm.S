/*
 * tf_fully_connected_s8_arm.S - the Cortex-M assembly of tf_fully_connected_s8 (and so of
 * tf_conv2d_s8, which runs its patches through it). Thumb-2 with the DSP extension; it
 * assembles to nothing unless TF_ARM_DSP_ASM (tf_dsp.h). Shapes and the formula: see
 * tf_fully_connected_s8.h; the scratch layouts, the state structures and the portable C of
 * every routine here: tf_fully_connected_s8.c.
 *
 * Calling convention: AAPCS. Every entry point takes its arguments in r0-r3 (a fifth on the
 * stack, at [sp] on entry), keeps r4-r11 (pushed and popped), may change r0-r3, r12, lr and
 * the flags, and calls nothing. "// stack: <function> <bytes>" gives each entry point's
 * deepest stack use, for the firmware's static stack bound (the Makefile turns these lines
 * into its call-graph file).
 *
 * Entry points:
 *   tf_fc_tile6 / tf_fc_tile4 / tf_fc_tile2   every row against a tile of 6, 4 or 2 tokens
 *   tf_fc_solo                                every pair of rows against one token
 *   tf_fc_extend_tile                         sign-extends 2, 4 or 6 tokens into a tile
 *   tf_fully_connected_s8_tile_put            groups of one token into a 6-token tile (conv)
 *   tf_fc_extend_token                        one token on its own, tail group included
 *   tf_fc_gen_tile                            the generic path: every row against 4 tokens
 *
 * Extended inputs: a group of 4 inputs x0..x3 is two words, SXTB16(x) = (x0, x2) and
 * SXTB16(x ror 8) = (x1, x3) as int16 pairs; a weight word gets the same, so one group of one
 * token against one row is two SMLADs.
 */
#include "tf_config.h"
#include "tf_dsp.h"

#if TF_ARM_DSP_ASM

    .syntax unified
    .thumb

/* -- the tile routines: every row against a tile of T = 6, 4 or 2 tokens ------------------
 *
 * void tf_fc_tile<T>(fc_state_t *st)          (r0: the row loop's state, in scratch)
 *
 * The tile (tf_fully_connected_s8.c): a header word at tile - 4 (the first jump's table
 * index, rewritten to its address), group g of token t at tile + 8 (T g + t), the end marker
 * 0x80000000 after the last group, then the state, then the extended tail group (k % 4 != 0)
 * of the T tokens at state + 64. fc_state_t, by offset:
 *    0 pm    multiplier of the current row      4 ps   its shift
 *    8 z2    2 output_zp + 1                   16 pa, 20 pb   outputs of tokens 0 and T/2
 *   24 d1    m - 1, 28 d2  2m - 1 (the next tokens' outputs, after a post-increment)
 *   32 db    bias - multiplier, in bytes       36 pm_end  multiplier + m
 *   40 lo, 44 hi   the activation range (the clamping epilogue)
 *   48 tile  52 after  code after the MACs    56 epi  the epilogue (both: table index in,
 *            rewritten to the address)        60 w0   weights - 4
 *
 * Registers:
 *   r0-r3   two tokens' pairs of the current group (LDM), then the epilogue's temporaries
 *   r4-r9   the accumulators of tokens 0-5 (T = 4: r4-r7, T = 2: r4/r5); the last one holds
 *           the row's bias before the first group
 *   r10/r11 the weight word's even / odd pairs (the epilogue: sh and the multiplier)
 *   r12     the weights (pre-incremented by 4 per word)
 *   lr      the tile (post-incremented by each LDM), the state after the end marker
 *
 * Per row: the first group (it starts every accumulator from the bias), a jump (LDR PC)
 * into the 8-group loop so that it runs whole iterations, the loop until it has loaded the
 * end marker, a jump to the tail group (k % 4 != 0) or straight to the epilogue, the
 * epilogue (requantization, strided stores), which falls into the next row. Requantization:
 * v = SMMLA(acc, M, c) >> sh, sh = -1 - shift, c = z2 2^(sh - 1), then SSAT #8 or a clamp to
 * [lo, hi] (see the .c file for why that equals tf_requantize).
 */

    /* The next weight word: r11 = [r12 += 4], extended into r10 (even) / r11 (odd). */
    .macro FC_W
    ldr     r11, [r12, #4]!
    sxtb16  r10, r11
    sxtb16  r11, r11, ror #8
    .endm

    /* acc = init + the pairs xa, xb against the weight word. */
    .macro FC_MAC acc, xa, xb, init
    smlad   \acc, \xa, r10, \init
    smlad   \acc, \xb, r11, \acc
    .endm

    /* Two tokens (r0/r1, r2/r3), then the next two tokens' pairs. */
    .macro FC_PAIR a0, a1, i0, i1
    FC_MAC  \a0, r0, r1, \i0
    FC_MAC  \a1, r2, r3, \i1
    ldmia   lr!, {r0-r3}
    .endm

    /* One group of T tokens; the last LDM loads the next group's first tokens, or the end
     * marker. FC_PEEL: the row's first group, every accumulator from the bias (the last
     * accumulator, consumed last), its first LDM included. */
    .macro FC_GROUP T
    FC_W
    FC_PAIR r4, r5, r4, r5
    .if \T >= 4
    FC_PAIR r6, r7, r6, r7
    .endif
    .if \T == 6
    FC_PAIR r8, r9, r8, r9
    .endif
    .endm

    .macro FC_PEEL T, bias
    ldmia   lr!, {r0-r3}
    FC_W
    FC_PAIR r4, r5, \bias, \bias
    .if \T >= 4
    FC_PAIR r6, r7, \bias, \bias
    .endif
    .if \T == 6
    FC_PAIR r8, r9, \bias, \bias
    .endif
    .endm

    /* Two tokens' tail pairs at [lr + off] (lr at the state) against the weight word. */
    .macro FC_TAIL2 off, a0, a1
    ldrd    r0, r1, [lr, #\off]
    ldrd    r2, r3, [lr, #\off + 8]
    FC_MAC  \a0, r0, r1, \a0
    FC_MAC  \a1, r2, r3, \a1
    .endm

#if TF_ROUNDING_TFLITE
    /* TFLite's rounding (tf_math.h; shifts in [-24, -2], fc_mode): h = SRDHM(acc, M) =
     * (acc M + 2^30) >> 31, then (h + 2^(n-1) - (h < 0)) >> n, n = -shift (ties away from
     * zero), + output_zp. Constants: M in r11, n in r10, 2^(n-1) in r2, zp in r3 (from
     * z2 = 2 zp + 1); r1 a temporary; r0: the next row's multiplier. */
    .macro FC_PARAMS
    ldm     lr, {r0-r2}
    ldr     r11, [r0], #4
    ldr     r10, [r1], #4
    strd    r0, r1, [lr]
    rsb     r10, r10, #0
    asr     r3, r2, #1
    sub     r1, r10, #1
    movs    r2, #1
    lsl     r2, r2, r1
    .endm

    .macro FC_TFL r
    smull   r1, \r, \r, r11
    adds    r1, r1, #0x40000000
    adc     \r, \r, #0
    lsl     \r, \r, #1
    orr     \r, \r, r1, lsr #31
    add     r1, \r, r2
    sub     r1, r1, \r, lsr #31
    asr     \r, r1, r10
    add     \r, \r, r3
    .endm

    .macro FC_SAT r
    FC_TFL  \r
    ssat    \r, #8, \r
    .endm

    /* Clamp r to [r1, r3] (loaded after every FC_TFL of the row). */
    .macro FC_CLAMP r
    cmp     \r, r1
    it      lt
    movlt   \r, r1
    cmp     \r, r3
    it      gt
    movgt   \r, r3
    .endm
#else
    /* The row's requantization constants: M in r11, sh in r10, c in r2; r0: the next row's
     * multiplier (pm and ps move on by one row). */
    .macro FC_PARAMS
    ldm     lr, {r0-r2}
    ldr     r11, [r0], #4
    ldr     r10, [r1], #4
    strd    r0, r1, [lr]
    mvn     r10, r10
    sub     r1, r10, #1
    lsl     r2, r2, r1
    .endm

    /* Requantize accumulator r: SMMLA, ASR, then SSAT, or a clamp to [r1, r3]. */
    .macro FC_SAT r
    smmla   \r, \r, r11, r2
    asr     \r, \r, r10
    ssat    \r, #8, \r
    .endm

    .macro FC_CLAMP r
    smmla   \r, \r, r11, r2
    asr     \r, \r, r10
    cmp     \r, r1
    it      lt
    movlt   \r, r1
    cmp     \r, r3
    it      gt
    movgt   \r, r3
    .endm
#endif

    /* The row's outputs, token t at out + t m + j: pa (r1) takes tokens 0..T/2-1, pb (r2)
     * the others, m - 1 (r3) and 2m - 1 (r10) apart after the post-increment. */
    .macro FC_STORE T
    .if \T == 6
    ldrd    r1, r2, [lr, #16]
    ldrd    r3, r10, [lr, #24]
    strb    r4, [r1], #1
    strb    r5, [r1, r3]
    strb    r6, [r1, r10]
    strb    r7, [r2], #1
    strb    r8, [r2, r3]
    strb    r9, [r2, r10]
    strd    r1, r2, [lr, #16]
    .elseif \T == 4
    ldrd    r1, r2, [lr, #16]
    ldr     r3, [lr, #24]
    strb    r4, [r1], #1
    strb    r5, [r1, r3]
    strb    r6, [r2], #1
    strb    r7, [r2, r3]
    strd    r1, r2, [lr, #16]
    .else
    ldr     r1, [lr, #16]
    ldr     r3, [lr, #24]
    strb    r4, [r1], #1
    strb    r5, [r1, r3]
    str     r1, [lr, #16]
    .endif
    .endm

    /* tf_fc_tile<T>: name, T, the last accumulator (the bias register) */
    .macro FC_TILE name, T, bias
    .pushsection .text.\name,"ax",%progbits
    .balign 4
    .global \name
    .type   \name, %function
    .thumb_func
\name:
    push    {r4-r11, lr}
    mov     lr, r0
    /* the three jumps' table indices -> addresses */
    adr     r3, .L\name\()_tab
    ldr     r2, [lr, #48]
    ldr     r1, [r2, #-4]
    ldr     r1, [r3, r1, lsl #2]
    str     r1, [r2, #-4]
    ldr     r1, [lr, #52]
    ldr     r1, [r3, r1, lsl #2]
    str     r1, [lr, #52]
    ldr     r1, [lr, #56]
    ldr     r1, [r3, r1, lsl #2]
    str     r1, [lr, #56]
    /* row 0: its bias, the weights, the tile */
    ldr     r0, [lr, #0]
    ldr     r1, [lr, #32]
    ldr     \bias, [r0, r1]
    ldr     r12, [lr, #60]
    ldr     lr, [lr, #48]
    b       .L\name\()_row
    /* Code addresses by table index (Thumb: + 1), as the .c file's AT_* name them:
     * 0 done (no group left after the first), 1-8 into the 8-group loop, 9 / 10 the
     * saturating / clamping epilogue, 11-13 the tail group of k % 4 = 1, 2, 3 inputs. */
    .p2align 2
.L\name\()_tab:
    .word   .L\name\()_done + 1, .L\name\()_g0 + 1, .L\name\()_g1 + 1, .L\name\()_g2 + 1
    .word   .L\name\()_g3 + 1, .L\name\()_g4 + 1, .L\name\()_g5 + 1, .L\name\()_g6 + 1
    .word   .L\name\()_g7 + 1, .L\name\()_ef + 1, .L\name\()_eg + 1, .L\name\()_t1 + 1
    .word   .L\name\()_t2 + 1, .L\name\()_t3 + 1
    /* the epilogues; lr: the state */
.L\name\()_eg:
    FC_PARAMS
#if TF_ROUNDING_TFLITE
    FC_TFL  r4
    FC_TFL  r5
    .if \T >= 4
    FC_TFL  r6
    FC_TFL  r7
    .endif
    .if \T == 6
    FC_TFL  r8
    FC_TFL  r9
    .endif
#endif
    ldrd    r1, r3, [lr, #40]
    FC_CLAMP r4
    FC_CLAMP r5
    .if \T >= 4
    FC_CLAMP r6
    FC_CLAMP r7
    .endif
    .if \T == 6
    FC_CLAMP r8
    FC_CLAMP r9
    .endif
    b       .L\name\()_st
.L\name\()_ef:
    FC_PARAMS
    FC_SAT  r4
    FC_SAT  r5
    .if \T >= 4
    FC_SAT  r6
    FC_SAT  r7
    .endif
    .if \T == 6
    FC_SAT  r8
    FC_SAT  r9
    .endif
.L\name\()_st:
    FC_STORE \T
    ldrd    r1, r2, [lr, #32]            /* db, pm_end */
    cmp     r0, r2
    beq     .L\name\()_exit
    ldr     \bias, [r0, r1]              /* the next row's bias */
    ldr     lr, [lr, #48]
.L\name\()_row:
    FC_PEEL \T, \bias
    ldr     pc, [lr, #-(8 * \T + 20)]    /* the header word: into the loop, or done */
.L\name\()_g0:
    FC_GROUP \T
.L\name\()_g1:
    FC_GROUP \T
.L\name\()_g2:
    FC_GROUP \T
.L\name\()_g3:
    FC_GROUP \T
.L\name\()_g4:
    FC_GROUP \T
.L\name\()_g5:
    FC_GROUP \T
.L\name\()_g6:
    FC_GROUP \T
.L\name\()_g7:
    FC_GROUP \T
    cmp     r0, #0x80000000              /* the end marker: lr is at the state */
    bne     .L\name\()_g0
.L\name\()_done:
    ldr     pc, [lr, #52]                /* after: the tail group or the epilogue */
    /* the tail group: the weight word at the row's k - 4 (r12 + k % 4) */
.L\name\()_t1:
    ldr     r11, [r12, #1]!
    b       .L\name\()_tc
.L\name\()_t2:
    ldr     r11, [r12, #2]!
    b       .L\name\()_tc
.L\name\()_t3:
    ldr     r11, [r12, #3]!
.L\name\()_tc:
    sxtb16  r10, r11
    sxtb16  r11, r11, ror #8
    FC_TAIL2 64, r4, r5
    .if \T >= 4
    FC_TAIL2 80, r6, r7
    .endif
    .if \T == 6
    FC_TAIL2 96, r8, r9
    .endif
    ldr     pc, [lr, #56]                /* the epilogue */
.L\name\()_exit:
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .popsection
    .endm

// stack: tf_fc_tile6 36
    FC_TILE tf_fc_tile6, 6, r9
// stack: tf_fc_tile4 36
    FC_TILE tf_fc_tile4, 4, r7
// stack: tf_fc_tile2 36
    FC_TILE tf_fc_tile2, 2, r5

/* -- one token against every pair of rows --------------------------------------------------
 *
 * void tf_fc_solo(fc_solo_state_t *st)        (r0: the state, after the token in scratch)
 *
 * The token: its groups at xs (8 bytes each), its tail group after them. fc_solo_state_t,
 * by offset:
 *    0 pm    multiplier of the pair's first row   4 ps   its shift      8 z2  2 zp + 1
 *   16 out   output of the pair's first row      20 adv  2k - 4G: the weight pointers, the
 *            pair's groups done -> the next pair 24 xs   the token  28 xend  its whole pairs
 *            of groups                           32 db   bias - multiplier, in bytes
 *   36 pm_end                                    40 lo, 44 hi
 *   48 after  after the pairs of groups: the odd group, the tail or the epilogue
 *   52 epi    the epilogue                       56 entry  into the 4-pair loop
 *   60 after_odd  after the odd group            (48-60: table index in, address after)
 *   64 toff  k % 4 - 4, the tail word's offset from the groups' end
 *   68 w0    the first row                       72 k
 *
 * Registers: r0-r3 two groups of the token (LDM), r4/r5 the two rows' accumulators, r6/r7
 * two weight words, r8 a temporary, r9/r10 the two rows' weights, r11 the token, r12 the end
 * of its pairs of groups, lr the state. A pair of groups a step; the loop is entered part
 * way (entry) so that it runs whole 4-step iterations; LDRD loads the weights when they are
 * word aligned (k % 4 == 0 and aligned weights), two LDRs otherwise. An odd m: the caller
 * runs the last pair again, overlapping the one before.
 */

    /* One row's step (ACC) with the weight words in r6 / r7 against the token's r0-r3. */
    .macro SOLO_ROW acc
    sxtb16  r8, r6
    sxtb16  r6, r6, ror #8
    smlad   \acc, r0, r8, \acc
    smlad   \acc, r1, r6, \acc
    sxtb16  r8, r7
    sxtb16  r7, r7, ror #8
    smlad   \acc, r2, r8, \acc
    smlad   \acc, r3, r7, \acc
    .endm

    .macro SOLO_STEP_LDRD
    ldmia   r11!, {r0-r3}
    ldrd    r6, r7, [r9], #8
    SOLO_ROW r4
    ldrd    r6, r7, [r10], #8
    SOLO_ROW r5
    .endm

    .macro SOLO_STEP_LDR
    ldmia   r11!, {r0-r3}
    ldr     r6, [r9], #4
    ldr     r7, [r9], #4
    SOLO_ROW r4
    ldr     r6, [r10], #4
    ldr     r7, [r10], #4
    SOLO_ROW r5
    .endm

#if TF_ROUNDING_TFLITE
    /* One row's requantization as TFLite (FC_TFL): M in rm, the shift in rs (becomes n),
     * z2 in r2; r8 and r11 temporaries. */
    .macro SOLO_REQ rm, rs, acc
    smull   r8, \acc, \acc, \rm
    adds    r8, r8, #0x40000000
    adc     \acc, \acc, #0
    lsl     \acc, \acc, #1
    orr     \acc, \acc, r8, lsr #31
    rsb     \rs, \rs, #0
    sub     r8, \rs, #1
    movs    r11, #1
    lsl     r8, r11, r8
    add     r8, \acc, r8
    sub     r8, r8, \acc, lsr #31
    asr     \acc, r8, \rs
    add     \acc, \acc, r2, asr #1
    .endm
#else
    /* One row's requantization: M in rm, the shift in rs (becomes sh), z2 in r2. */
    .macro SOLO_REQ rm, rs, acc
    mvn     \rs, \rs
    sub     r8, \rs, #1
    lsl     r8, r2, r8
    smmla   \acc, \acc, \rm, r8
    asr     \acc, \acc, \rs
    .endm
#endif

    .macro SOLO_PARAMS
    ldm     lr, {r0-r2}
    ldrd    r3, r12, [r0], #8
    ldrd    r6, r7, [r1], #8
    strd    r0, r1, [lr]
    SOLO_REQ r3, r6, r4
    SOLO_REQ r12, r7, r5
    .endm

    .macro SOLO_CLAMP r
    cmp     \r, r1
    it      lt
    movlt   \r, r1
    cmp     \r, r3
    it      gt
    movgt   \r, r3
    .endm

    .pushsection .text.tf_fc_solo,"ax",%progbits
    .balign 4
    .global tf_fc_solo
    .type   tf_fc_solo, %function
    .thumb_func
// stack: tf_fc_solo 36
tf_fc_solo:
    push    {r4-r11, lr}
    mov     lr, r0
    /* the four jumps' table indices -> addresses */
    adr     r3, .Lfs_tab
    ldr     r1, [lr, #48]
    ldr     r1, [r3, r1, lsl #2]
    str     r1, [lr, #48]
    ldr     r1, [lr, #52]
    ldr     r1, [r3, r1, lsl #2]
    str     r1, [lr, #52]
    ldr     r1, [lr, #56]
    ldr     r1, [r3, r1, lsl #2]
    str     r1, [lr, #56]
    ldr     r1, [lr, #60]
    ldr     r1, [r3, r1, lsl #2]
    str     r1, [lr, #60]
    /* the first pair: biases, rows, token */
    ldr     r0, [lr, #0]
    ldr     r1, [lr, #32]
    add     r1, r0, r1
    ldrd    r4, r5, [r1]
    ldr     r9, [lr, #68]
    ldr     r10, [lr, #72]
    add     r10, r9, r10
    ldrd    r11, r12, [lr, #24]
    b       .Lfs_row
    /* Code addresses by table index (Thumb: + 1), as the .c file's AS_* name them:
     * 0 done, 1-4 into the LDRD loop, 5-8 into the LDR loop, 9 / 10 the saturating /
     * clamping epilogue, 11 the odd group, 12 the tail group. */
    .p2align 2
.Lfs_tab:
    .word   .Lfs_done + 1, .Lfs_a0 + 1, .Lfs_a1 + 1, .Lfs_a2 + 1, .Lfs_a3 + 1
    .word   .Lfs_u0 + 1, .Lfs_u1 + 1, .Lfs_u2 + 1, .Lfs_u3 + 1
    .word   .Lfs_ef + 1, .Lfs_eg + 1, .Lfs_odd + 1, .Lfs_tail + 1
.Lfs_eg:
    SOLO_PARAMS
    ldrd    r1, r3, [lr, #40]
    SOLO_CLAMP r4
    SOLO_CLAMP r5
    b       .Lfs_st
.Lfs_ef:
    SOLO_PARAMS
    ssat    r4, #8, r4
    ssat    r5, #8, r5
.Lfs_st:
    ldrd    r1, r2, [lr, #16]            /* out, adv */
    strb    r4, [r1], #1
    strb    r5, [r1], #1
    str     r1, [lr, #16]
    ldrd    r1, r3, [lr, #32]            /* db, pm_end */
    cmp     r0, r3
    beq     .Lfs_exit
    add     r1, r0, r1
    ldrd    r4, r5, [r1]                 /* the next pair's biases */
    add     r9, r9, r2
    add     r10, r10, r2
    ldrd    r11, r12, [lr, #24]
.Lfs_row:
    ldr     pc, [lr, #56]                /* entry */
.Lfs_a0:
    SOLO_STEP_LDRD
.Lfs_a1:
    SOLO_STEP_LDRD
.Lfs_a2:
    SOLO_STEP_LDRD
.Lfs_a3:
    SOLO_STEP_LDRD
    cmp     r11, r12
    bne     .Lfs_a0
    ldr     pc, [lr, #48]                /* after */
.Lfs_u0:
    SOLO_STEP_LDR
.Lfs_u1:
    SOLO_STEP_LDR
.Lfs_u2:
    SOLO_STEP_LDR
.Lfs_u3:
    SOLO_STEP_LDR
    cmp     r11, r12
    bne     .Lfs_u0
.Lfs_done:
    ldr     pc, [lr, #48]                /* after */
.Lfs_odd:                                /* the odd group */
    ldrd    r0, r1, [r11], #8
    ldr     r6, [r9], #4
    sxtb16  r8, r6
    sxtb16  r6, r6, ror #8
    smlad   r4, r0, r8, r4
    smlad   r4, r1, r6, r4
    ldr     r6, [r10], #4
    sxtb16  r8, r6
    sxtb16  r6, r6, ror #8
    smlad   r5, r0, r8, r5
    smlad   r5, r1, r6, r5
    ldr     pc, [lr, #60]                /* after_odd */
.Lfs_tail:                               /* the tail group, against the word at k - 4 */
    ldrd    r0, r1, [r11]
    ldr     r12, [lr, #64]
    ldr     r6, [r9, r12]
    sxtb16  r8, r6
    sxtb16  r6, r6, ror #8
    smlad   r4, r0, r8, r4
    smlad   r4, r1, r6, r4
    ldr     r6, [r10, r12]
    sxtb16  r8, r6
    sxtb16  r6, r6, ror #8
    smlad   r5, r0, r8, r5
    smlad   r5, r1, r6, r5
    ldr     pc, [lr, #52]                /* epi */
.Lfs_exit:
    pop     {r4-r11, pc}
    .size   tf_fc_solo, . - tf_fc_solo
    .popsection

/* -- extending tokens ----------------------------------------------------------------------
 *
 * void tf_fc_extend_tile(const int8_t *x, int32_t k, int32_t T, uint32_t *tile)
 * r0 x, r1 k (>= 4), r2 T (2, 4 or 6), r3 tile: the whole groups (k / 4) of the T tokens
 * at x, k bytes apart, into the tile: group g's 2T words are contiguous, so per group the
 * tokens' words are loaded, extended and stored by STMs of two tokens (T = 2, 4) or three
 * (T = 6). The k % 4 tail is the caller's.
 * Registers: r0-r5 the extended words; the tokens' pointers (post-incremented by 4 a group):
 * T = 2 lr; T = 4 r6 (tokens 0, 1) and r12 (2, 3); T = 6 r7 (0-2) and r6 (3-5); the tile
 * r12 (T = 2) or lr; the next token k - 4 on from a post-incremented pointer (r5, T = 6:
 * r8), the one after 2k - 4 (r12, T = 6); the end of token 0's groups r4 (T = 6: r9).
 */

    /* Tokens at [b] and [b + k] (b post-incremented by 4) into e0/o0, e1/o1. */
    .macro FC_XT2 b, k4, e0, o0, e1, o1
    ldr     \o0, [\b], #4
    ldr     \o1, [\b, \k4]
    sxtb16  \e0, \o0
    sxtb16  \o0, \o0, ror #8
    sxtb16  \e1, \o1
    sxtb16  \o1, \o1, ror #8
    .endm

    /* The token at [b + off] into e/o. */
    .macro FC_XT1 b, off, e, o
    ldr     \o, [\b, \off]
    sxtb16  \e, \o
    sxtb16  \o, \o, ror #8
    .endm

    .pushsection .text.tf_fc_extend_tile,"ax",%progbits
    .balign 4
    .global tf_fc_extend_tile
    .type   tf_fc_extend_tile, %function
    .thumb_func
// stack: tf_fc_extend_tile 28
tf_fc_extend_tile:
    asrs    r12, r1, #2                  /* groups */
    beq     .Lxt_none
    cmp     r2, #6
    push    {r4-r9, lr}
    add     r4, r0, r12, lsl #2          /* end */
    sub     r5, r1, #4                   /* k - 4 */
    beq     .Lxt_6
    cmp     r2, #4
    beq     .Lxt_4
    mov     lr, r0                       /* T = 2 */
    mov     r12, r3
.Lxt_2:
    FC_XT2  lr, r5, r0, r1, r2, r3
    stmia   r12!, {r0-r3}
    cmp     lr, r4
    bne     .Lxt_2
    pop     {r4-r9, pc}
.Lxt_4:
    add     r12, r0, r1, lsl #1          /* tokens 2, 3 */
    mov     r6, r0
    mov     lr, r3
.Lxt_4loop:
    FC_XT2  r6, r5, r0, r1, r2, r3
    stmia   lr!, {r0-r3}
    FC_XT2  r12, r5, r0, r1, r2, r3
    stmia   lr!, {r0-r3}
    cmp     r6, r4
    bne     .Lxt_4loop
    pop     {r4-r9, pc}
.Lxt_6:
    add     r6, r1, r1, lsl #1
    sub     r12, r1, #2
    mov     lr, r3
    mov     r7, r0
    add     r6, r0                       /* tokens 3, 4, 5 */
    lsl     r12, r12, #1                 /* 2k - 4 */
    mov     r8, r5
    mov     r9, r4
.Lxt_6loop:
    FC_XT2  r7, r8, r0, r1, r2, r3
    FC_XT1  r7, r12, r4, r5
    stmia   lr!, {r0-r5}
    FC_XT2  r6, r8, r0, r1, r2, r3
    FC_XT1  r6, r12, r4, r5
    stmia   lr!, {r0-r5}
    cmp     r7, r9
    bne     .Lxt_6loop
    pop     {r4-r9, pc}
.Lxt_none:
    bx      lr
    .size   tf_fc_extend_tile, . - tf_fc_extend_tile
    .popsection

    /* `groups` (r1, >= 0) groups of 4 inputs of one token from x (r3) to dst (r0), the
     * group's two words, then `stride` bytes on: 4 groups an iteration (4 LDR, 8 SXTB16,
     * 4 STRD), then one at a time. Leaves x and dst after the last group. Uses r2, r4-r7
     * and lr. */
    .macro FC_EXTEND_GROUPS stride
    cmp     r1, #3
    ble     1f
    bic     r7, r1, #3
    add     r7, r3, r7, lsl #2           /* the end of the whole 4-group iterations */
2:
    ldr     r2, [r3], #4
    ldr     r4, [r3], #4
    ldr     r5, [r3], #4
    ldr     r6, [r3], #4
    .irp    r, r2, r4, r5, r6
    sxtb16  lr, \r
    sxtb16  \r, \r, ror #8
    strd    lr, \r, [r0], #\stride
    .endr
    cmp     r3, r7
    bne     2b
    and     r1, r1, #3
1:
    cbz     r1, 4f
3:
    ldr     r2, [r3], #4
    sxtb16  lr, r2
    sxtb16  r2, r2, ror #8
    strd    lr, r2, [r0], #\stride
    subs    r1, r1, #1
    bne     3b
4:
    .endm

/* void tf_fully_connected_s8_tile_put(void *scratch, int32_t token, int32_t group,
 *                                     const int8_t *x, int32_t groups)
 * r0 scratch, r1 token, r2 group, r3 x, [sp] groups: see tf_fully_connected_s8.h. Token
 * `token`'s groups from `group` on, in the 6-token tile at scratch + 8: 48 bytes a group.
 * The portable C of it: the .c file. */
    .pushsection .text.tf_fully_connected_s8_tile_put,"ax",%progbits
    .balign 4
    .global tf_fully_connected_s8_tile_put
    .type   tf_fully_connected_s8_tile_put, %function
    .thumb_func
// stack: tf_fully_connected_s8_tile_put 20
tf_fully_connected_s8_tile_put:
    add     r2, r2, r2, lsl #1
    add     r1, r1, r2, lsl #1
    add     r1, r1, #1                   /* 6 group + token + 1 (the header) */
    add     r0, r0, r1, lsl #3           /* dst */
    push    {r4-r7, lr}
    ldr     r1, [sp, #20]                /* groups */
    FC_EXTEND_GROUPS 48
    pop     {r4-r7, pc}
    .size   tf_fully_connected_s8_tile_put, . - tf_fully_connected_s8_tile_put
    .popsection

/* void tf_fc_extend_token(const int8_t *x, int32_t k, uint32_t *xs)
 * r0 x, r1 k (>= 4), r2 xs: one token on its own, its k / 4 groups at xs (8 bytes each),
 * then its tail group (k % 4 != 0): the word at x + k - 4 with the inputs already in a
 * group zeroed (shifted out and back), extended, so that the tail runs against the weight
 * word at k - 4 and no load passes the end of a row. */
    .pushsection .text.tf_fc_extend_token,"ax",%progbits
    .balign 4
    .global tf_fc_extend_token
    .type   tf_fc_extend_token, %function
    .thumb_func
// stack: tf_fc_extend_token 20
tf_fc_extend_token:
    push    {r4-r7, lr}
    and     r12, r1, #3                  /* k % 4 */
    mov     r3, r0
    mov     r0, r2
    asr     r1, r1, #2
    FC_EXTEND_GROUPS 8
    cmp     r12, #0
    beq     .Lxk_done
    add     r2, r3, r12
    ldr     r2, [r2, #-4]                /* the word at k - 4: x + 4G + k % 4 - 4 */
    lsl     r1, r12, #3
    rsb     r1, r1, #32                  /* the bits of the inputs already in a group */
    lsr     r2, r2, r1
    lsl     r2, r2, r1
    sxtb16  r4, r2
    sxtb16  r2, r2, ror #8
    strd    r4, r2, [r0]
.Lxk_done:
    pop     {r4-r7, pc}
    .size   tf_fc_extend_token, . - tf_fc_extend_token
    .popsection

/* -- the generic path: every row against 4 tokens --------------------------------------------
 *
 * void tf_fc_gen_tile(gen_state_t *st)         (r0: the row loop's parameters, in scratch;
 *                                              out moves on by m, the rest stays)
 *
 * Any requantization parameters, as tf_requantize + output_zp, then tf_clamp: the scratch
 * layout (the tile of G groups at xs, the tail of r = k % 4 inputs after it, then the state)
 * and the portable C: the .c file. gen_state_t, by offset (from the state; the tail and the
 * tile's end are 24 bytes before it):
 *    0 xs   the tile          4 rest  k % 4          8 bias     12 multiplier  16 shift
 *   20 zp   24 lo, 28 hi (the activation range)     32 out: token 0's output of the row
 *   36 d1, 40 d2, 44 d3: m - 1, 2m - 1, 3m - 1 (tokens 1-3, after a post-increment)
 *   48 m    52 weights
 *
 * Registers: r0 the weights (each row right after the one before), r1 the row j, r3 the
 * tile's end (the state at r3 + 24), r4-r7 the accumulators of tokens 0-3, r8 the tile
 * pointer; MACs: r9 / r10 the weight word's even / odd pairs (the tail: the weight byte),
 * r11 / r12 a token's pairs, r2 the tail's count; requantization: r9 the multiplier, r10 the
 * shift amount m = 31 - shift, r2 32 - m or m - 32, r8 the rounding term, lr output_zp,
 * r11 / r12 the 64-bit product, then the activation range.
 *
 * Requantization: tf_requantize(a, M, s) = ((a M >> n) + 1) >> 1 with n = 30 - s, that is
 * (a M + 2^n) >> m with m = n + 1 in [1, 62] (s in [-31, 30]), as int32. For m <= 32 the
 * 64-bit sum (SMULL, ADDS, ADC) shifts as (lo >> m) | (hi << (32 - m)) (a register shift by
 * 32 gives 0); for m > 32 the rounding term is in the high word only: (hi + 2^(n - 32)) >>
 * (m - 32), arithmetic (no carry from the low word, no overflow: |hi| < 2^30).
 */
#define GS 24                            /* the state, from the tile's end */

#if TF_ROUNDING_TFLITE
/* TFLite's MultiplyByQuantizedMultiplier (tf_math.h): h = SRDHM(a << left, M) =
 * (a M + 2^30) >> 31 (SMULL, ADDS, ADC, then the two words' bits 31..62), then for s <= 0 a
 * rounding shift by n = -s with ties away from zero: (h + 2^(n-1) - (h < 0)) >> n.
 * Registers: r9 M, r10 n (s <= 0) or left (s > 0), r2 2^(n-1), r8 2^(n-1) - 1 (0, 0 for
 * n = 0), lr output_zp. */
    .macro GEN_TFL_HIGH a, x
    smull   r11, r12, \x, r9
    adds    r11, r11, #0x40000000
    adc     r12, r12, #0
    lsl     r12, r12, #1
    orr     \a, r12, r11, lsr #31
    .endm

    .macro GEN_RQ_TFL a
    GEN_TFL_HIGH \a, \a
    cmp     \a, #0
    ite     ge
    addge   \a, \a, r2
    addlt   \a, \a, r8
    asr     \a, \a, r10
    add     \a, \a, lr
    .endm

    .macro GEN_RQ_TFL_LEFT a
    lsl     \a, \a, r10
    GEN_TFL_HIGH \a, \a
    add     \a, \a, lr
    .endm
#endif

    /* Requantize accumulator a, m <= 32 (r8: 2^n, r10: m, r2: 32 - m), + output_zp. */
    .macro GEN_RQ_LO a
    smull   r11, r12, \a, r9
    adds    r11, r11, r8
    adc     r12, r12, #0
    lsr     r11, r11, r10
    lsl     r12, r12, r2
    orr     \a, r11, r12
    add     \a, \a, lr
    .endm

    /* The same, m > 32 (r8: 2^(n - 32), r2: m - 32). */
    .macro GEN_RQ_HI a
    smull   r11, r12, \a, r9
    add     r12, r12, r8
    asr     r12, r12, r2
    add     \a, r12, lr
    .endm

    /* Clamp a to [r11, r12]. */
    .macro GEN_CLAMP a
    cmp     \a, r11
    it      lt
    movlt   \a, r11
    cmp     \a, r12
    it      gt
    movgt   \a, r12
    .endm

    .pushsection .text.tf_fc_gen_tile,"ax",%progbits
    .balign 4
    .global tf_fc_gen_tile
    .type   tf_fc_gen_tile, %function
    .thumb_func
// stack: tf_fc_gen_tile 36
tf_fc_gen_tile:
    push    {r4-r11, lr}
    sub     r3, r0, #GS
    ldr     r0, [r3, #GS + 52]           /* the weights */
    movs    r1, #0                       /* j */
.Lgt_row:
    ldr     r8, [r3, #GS + 0]            /* the tile */
    ldr     r2, [r3, #GS + 8]
    ldr     r4, [r2, r1, lsl #2]         /* bias[j] */
    mov     r5, r4
    mov     r6, r4
    mov     r7, r4
    cmp     r8, r3
    beq     .Lgt_tail
.Lgt_group:
    ldr     r10, [r0], #4
    sxtb16  r9, r10
    sxtb16  r10, r10, ror #8
    .irp    a, r4, r5, r6, r7
    ldrd    r11, r12, [r8], #8
    smlad   \a, r11, r9, \a
    smlad   \a, r12, r10, \a
    .endr
    cmp     r8, r3
    bne     .Lgt_group
.Lgt_tail:
    ldr     r2, [r3, #GS + 4]            /* k % 4 */
    cbz     r2, .Lgt_rq
.Lgt_tail_loop:                          /* per input: its weight byte against 4 tokens */
    ldrsb   r9, [r0], #1
    ldrd    r11, r12, [r8], #8
    smlabb  r4, r11, r9, r4
    smlatb  r5, r11, r9, r5
    smlabb  r6, r12, r9, r6
    smlatb  r7, r12, r9, r7
    subs    r2, r2, #1
    bne     .Lgt_tail_loop
.Lgt_rq:
    ldr     r2, [r3, #GS + 12]
    ldr     r9, [r2, r1, lsl #2]         /* multiplier[j] */
    ldr     r2, [r3, #GS + 16]
    ldr     r10, [r2, r1, lsl #2]        /* shift[j] */
    ldr     lr, [r3, #GS + 20]           /* output_zp */
#if TF_ROUNDING_TFLITE
    cmp     r10, #0
    bgt     .Lgt_tfl_left
    rsb     r10, r10, #0                 /* n = -s */
    movs    r2, #1
    lsl     r2, r2, r10
    lsr     r2, r2, #1                   /* 2^(n-1), 0 for n = 0 */
    subs    r8, r2, #1
    it      lt
    movlt   r8, #0
    GEN_RQ_TFL r4
    GEN_RQ_TFL r5
    GEN_RQ_TFL r6
    GEN_RQ_TFL r7
    b       .Lgt_clamp
.Lgt_tfl_left:                           /* s > 0: no rounding shift */
    GEN_RQ_TFL_LEFT r4
    GEN_RQ_TFL_LEFT r5
    GEN_RQ_TFL_LEFT r6
    GEN_RQ_TFL_LEFT r7
    b       .Lgt_clamp
#endif
    rsb     r10, r10, #31                /* m */
    subs    r2, r10, #32
    bgt     .Lgt_hi
    mov     r8, #1                       /* m <= 32: 2^n, n = m - 1 */
    sub     r2, r10, #1
    lsl     r8, r8, r2
    rsb     r2, r10, #32
    GEN_RQ_LO r4
    GEN_RQ_LO r5
    GEN_RQ_LO r6
    GEN_RQ_LO r7
    b       .Lgt_clamp
.Lgt_hi:                                 /* m > 32: 2^(n - 32) = 2^(m - 33) */
    mov     r8, #1
    sub     r12, r2, #1
    lsl     r8, r8, r12
    GEN_RQ_HI r4
    GEN_RQ_HI r5
    GEN_RQ_HI r6
    GEN_RQ_HI r7
.Lgt_clamp:
    ldrd    r11, r12, [r3, #GS + 24]     /* act_min, act_max */
    GEN_CLAMP r4
    GEN_CLAMP r5
    GEN_CLAMP r6
    GEN_CLAMP r7
    ldr     r2, [r3, #GS + 32]           /* the row's outputs */
    ldrd    r8, r9, [r3, #GS + 36]
    ldr     r10, [r3, #GS + 44]
    strb    r4, [r2], #1
    strb    r5, [r2, r8]
    strb    r6, [r2, r9]
    strb    r7, [r2, r10]
    str     r2, [r3, #GS + 32]
    ldr     r2, [r3, #GS + 48]
    add     r1, r1, #1
    cmp     r1, r2
    bne     .Lgt_row
    pop     {r4-r11, pc}
    .size   tf_fc_gen_tile, . - tf_fc_gen_tile
    .popsection

#endif /* TF_ARM_DSP_ASM */

/* A host build links this (empty) object too: no executable stack. */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
