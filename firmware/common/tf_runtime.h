/*
 * tf_runtime.h - run a model with per-layer counts and measure the stack it used.
 *
 * The stack is painted with TF_STACK_PAINT before each run; afterwards the lowest word that
 * no longer holds the paint marks the high-water point (QEMU ignores writes past the RAM
 * region, so painting is the only way to see how deep the stack went). The painted area is
 * the stack itself, __stack_limit..__stack_top; the MPU guard below it is never touched, and
 * a run that reaches it faults instead of returning a figure (tf_stack_guard.c).
 */
#ifndef TF_RUNTIME_H
#define TF_RUNTIME_H

#include <stdint.h>

#define TF_STACK_PAINT 0xA5A5A5A5u

typedef struct {
    uint64_t total;      /* counter units (board_count_unit) for the whole inference */
    uint32_t stack_used; /* high-water mark in bytes, from the stack top */
} tf_run_result_t;

void tf_stack_paint_all(void);
uint32_t tf_stack_bytes(void);
tf_run_result_t tf_run_model(void);

#endif /* TF_RUNTIME_H */
