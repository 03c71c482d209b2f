/*
 * tf_batch_matmul_s8_arm.S - the Cortex-M assembly of tf_batch_matmul_qk_s8 / _av_s8: 2x4
 * output tiles (Thumb-2 with the DSP extension; assembles to nothing unless TF_ARM_DSP_ASM,
 * tf_dsp.h). The extended operand layouts, the fast requantization and the portable C of
 * both routines: tf_batch_matmul_s8.c.
 *
 * Calling convention: AAPCS. Both entry points take their arguments in r0-r3, keep r4-r11
 * (pushed and popped), change r0-r3, r12, lr and the flags, and call nothing.
 * "// stack: <function> <bytes>": the entry point's deepest stack use, for the firmware's
 * static stack bound.
 *
 * The left tile a: two rows' step words a[2 s + r] (each a pair of extended halfwords), then
 * the end marker 0x80000000 (no extended pair equals it) and a word, then the state
 * (bmm_state_t, below). A column block: b[8 G n + 4 s + l], four columns' step words per step.
 *
 * Registers: r0 / r1 the rows' step words, r2 / r3 two columns' step words, r4-r7 row 0 x
 * columns 0-3, r8-r11 row 1 x columns 0-3, r12 the left tile, lr the column block. The first
 * group (two steps) starts the accumulators with SMUAD; the loop runs whole groups until the
 * LDRD that fetches the next group's rows loads the end marker, after which r12 points at
 * the state.
 */
#include "tf_dsp.h"

#if TF_ARM_DSP_ASM

    .syntax unified
    .thumb

    .macro BMM_MAC first, d, n, m
    .if \first
    smuad   \d, \n, \m
    .else
    smlad   \d, \n, \m, \d
    .endif
    .endm

    /* One step: two LDRDs of two columns each, against both rows. */
    .macro BMM_STEP first
    ldrd    r2, r3, [lr], #8
    BMM_MAC \first, r4, r0, r2
    BMM_MAC \first, r5, r0, r3
    BMM_MAC \first, r8, r1, r2
    BMM_MAC \first, r9, r1, r3
    ldrd    r2, r3, [lr], #8
    BMM_MAC \first, r6, r0, r2
    BMM_MAC \first, r7, r0, r3
    BMM_MAC \first, r10, r1, r2
    BMM_MAC \first, r11, r1, r3
    .endm

    .macro BMM_NEXT
    ldrd    r0, r1, [r12], #8
    .endm

    /* The 8 accumulators of the block at lr against the left tile at r12 (tile: the label
     * a following block starts at). */
    .macro BMM_MACS tile, loop, done
\tile:
    BMM_NEXT
    BMM_STEP 1
    BMM_NEXT
    BMM_STEP 0
    BMM_NEXT
    cmp     r0, #0x80000000
    beq     \done
\loop:
    BMM_STEP 0
    BMM_NEXT
    BMM_STEP 0
    BMM_NEXT
    cmp     r0, #0x80000000
    bne     \loop
\done:
    .endm

    /* SMMLA(acc, mult, c) >> sh, saturated: mult r0, c r1, sh r2. */
    .macro BMM_SAT r
    smmla   \r, \r, r0, r1
    asr     \r, \r, r2
    ssat    \r, #8, \r
    .endm

/* void tf_bmm_tiles_fast(uint32_t *a, const uint32_t *b, int32_t groups,
 *                        const bmm_state_t *init)
 * r0 a, r1 b (the first full column block), r2 groups, r3 the state to copy behind the end
 * marker: {mult, c, sh, o0, o1, b_end, a, unused}. Every full column block up to b_end:
 * its 8 accumulators, SMMLA + ASR + SSAT, row 1's four stores then row 0's (o1 == o0, a
 * single row, leaves row 0), o0 and o1 on by 4, the next block. */
    .pushsection .text.tf_bmm_tiles_fast,"ax",%progbits
    .balign 4
    .global tf_bmm_tiles_fast
    .type   tf_bmm_tiles_fast, %function
    .thumb_func
// stack: tf_bmm_tiles_fast 36
tf_bmm_tiles_fast:
    push    {r4-r11, lr}
    add     r2, r0, r2, lsl #4
    add     r2, r2, #8                   /* the state: a + 4 G + 2 words */
    ldmia   r3, {r4-r11}
    stmia   r2, {r4-r11}
    mov     r12, r0
    mov     lr, r1
    BMM_MACS .Lbf_tile, .Lbf_loop, .Lbf_done
    ldm     r12, {r0-r2}                 /* mult, c, sh */
    .irp    r, r4, r5, r6, r7, r8, r9, r10, r11
    BMM_SAT \r
    .endr
    ldrd    r0, r1, [r12, #12]           /* o0, o1 */
    strb    r9, [r1, #1]
    strb    r10, [r1, #2]
    strb    r11, [r1, #3]
    strb    r8, [r1], #4
    strb    r5, [r0, #1]
    strb    r6, [r0, #2]
    strb    r7, [r0, #3]
    strb    r4, [r0], #4
    strd    r0, r1, [r12, #12]
    ldrd    r0, r12, [r12, #20]          /* b_end, a */
    cmp     lr, r0
    bne     .Lbf_tile
    pop     {r4-r11, pc}
    .size   tf_bmm_tiles_fast, . - tf_bmm_tiles_fast
    .popsection

/* const int32_t *tf_bmm_tile_raw(uint32_t *a, const uint32_t *b)
 * r0 a, r1 b (one column block): its 8 accumulators {row 0 x columns 0-3, row 1 x columns
 * 0-3} stored behind the end marker, where the state would be; returns their address. */
    .pushsection .text.tf_bmm_tile_raw,"ax",%progbits
    .balign 4
    .global tf_bmm_tile_raw
    .type   tf_bmm_tile_raw, %function
    .thumb_func
// stack: tf_bmm_tile_raw 36
tf_bmm_tile_raw:
    push    {r4-r11, lr}
    mov     r12, r0
    mov     lr, r1
    BMM_MACS .Lbr_tile, .Lbr_loop, .Lbr_done
    stm     r12, {r4-r11}
    mov     r0, r12
    pop     {r4-r11, pc}
    .size   tf_bmm_tile_raw, . - tf_bmm_tile_raw
    .popsection

#endif /* TF_ARM_DSP_ASM */

/* A host build links this (empty) object too: no executable stack. */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
