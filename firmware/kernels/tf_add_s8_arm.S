/*
 * tf_add_s8_arm.S - the Cortex-M assembly of tf_add_s8: its fast form, four elements an
 * iteration (Thumb-2 with the DSP extension; assembles to nothing unless TF_ARM_DSP_ASM,
 * tf_dsp.h). The formula, the fast form and its conditions (add_fast), and the portable C
 * of the same loop (add_fast_c): tf_add_s8.c.
 *
 * Calling convention: AAPCS. Both entry points take r0, keep r4-r11 (pushed and popped),
 * change r0-r3, r12, lr and the flags, and call nothing. "// stack: <function> <bytes>": the
 * entry point's deepest stack use, for the firmware's static stack bound.
 *
 * void tf_add_loop(const add_state_t *st)         outputs saturated to int8
 * void tf_add_loop_clamp(const add_state_t *st)   and clamped to [act_min, act_max]
 *
 * add_state_t (tf_add_s8.c), by offset, read with LDM/LDMDB around two pointers:
 *    0 end2  input2 + 4 groups    4 z2  -zp2 << s2    8 m2                 (P2: LDMDB r0)
 *   12 end1  input1 + 4 groups   16 z1  -zp1 << s1   20 m1
 *   24 ss    2^(s1-8) | 2^(s2-8) << 16               28 mask 0xFF00FF00    (P1: LDM r0)
 *   32 end_out  output + 4 groups 36 mo  40 c  44 k
 *   48 lo4, 52 hi4  act_min + 128, act_max + 128 in each byte              (P3: LDM lr)
 *   56 i0    -4 groups: the byte index, counting up to 0
 *
 * Registers: r0 P1 (state + 12), lr P3 (state + 32), r1 the byte index i (the elements are
 * at end + i), r2-r5 the four elements' values, r6-r11 the constants of the step at hand
 * (LDM), r12 a temporary.
 *
 * Four elements per iteration. Inputs: the word's bytes as (x << 8) in int16 lanes (AND with
 * 0xFF00FF00, once shifted by 8), then SMLAxB / SMLAxT make (x - zp) << s, SMMULR gives a and
 * SMMLAR adds b. Output: SMMLA + ASR per element, PKHBT two per word, USAT16 saturates to
 * [0, 255] (the value carries +128), ORR packs the bytes, EOR 0x80 makes them signed.
 */
#include "tf_dsp.h"

#if TF_ARM_DSP_ASM

    .syntax unified
    .thumb

    /* The loop; clamp: 1 for the clamp to [lo4, hi4] on the unsigned bytes (USUB8 sets GE
     * per byte, SEL picks: max(x, lo) then min(x, hi)). */
    .macro ADD_LOOP name, clamp
    .pushsection .text.\name,"ax",%progbits
    .balign 4
    .global \name
    .type   \name, %function
    .thumb_func
\name:
    push    {r4-r11, lr}
    ldr     r1, [r0, #56]
    add     lr, r0, #32
    add     r0, r0, #12
1:
    ldmia   r0, {r6-r10}                 /* end1, z1, m1, ss, mask */
    ldr     r11, [r6, r1]                /* input1's four bytes */
    and     r12, r10, r11, lsl #8
    and     r11, r11, r10
    smlabb  r2, r12, r9, r7
    smlatb  r4, r12, r9, r7
    smlabb  r3, r11, r9, r7
    smlatb  r5, r11, r9, r7
    smmulr  r2, r2, r8
    smmulr  r3, r3, r8
    smmulr  r4, r4, r8
    smmulr  r5, r5, r8
    ldmdb   r0, {r6-r8}                  /* end2, z2, m2 */
    ldr     r11, [r6, r1]                /* input2's four bytes */
    and     r12, r10, r11, lsl #8
    smlabt  r6, r12, r9, r7
    smmlar  r2, r6, r8, r2
    smlatt  r12, r12, r9, r7
    smmlar  r4, r12, r8, r4
    and     r11, r11, r10
    smlabt  r12, r11, r9, r7
    smmlar  r3, r12, r8, r3
    smlatt  r11, r11, r9, r7
    smmlar  r5, r11, r8, r5
    ldmia   lr, {r6-r11}                 /* end_out, mo, c, k, lo4, hi4 */
    smmla   r2, r2, r7, r8
    smmla   r3, r3, r7, r8
    smmla   r4, r4, r7, r8
    smmla   r5, r5, r7, r8
    asr     r2, r2, r9
    asr     r3, r3, r9
    asr     r4, r4, r9
    asr     r5, r5, r9
    pkhbt   r2, r2, r4, lsl #16
    pkhbt   r3, r3, r5, lsl #16
    usat16  r2, #8, r2
    usat16  r3, #8, r3
    orr     r2, r2, r3, lsl #8
    .if \clamp
    usub8   r12, r2, r10
    sel     r2, r2, r10
    usub8   r12, r11, r2
    sel     r2, r2, r11
    .endif
    eor     r2, r2, #0x80808080
    str     r2, [r6, r1]
    adds    r1, r1, #4
    bne     1b
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .popsection
    .endm

// stack: tf_add_loop 36
    ADD_LOOP tf_add_loop, 0
// stack: tf_add_loop_clamp 36
    ADD_LOOP tf_add_loop_clamp, 1

#endif /* TF_ARM_DSP_ASM */

/* A host build links this (empty) object too: no executable stack. */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
