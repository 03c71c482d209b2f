/* Per-layer counting and stack high-water measurement around tf_model_run(). */
#include "tf_runtime.h"

#include "tf_board.h"
#include "tf_model.h"

extern uint32_t __stack_limit[];
extern uint32_t __stack_top[];

static uint64_t layer_mark;

static inline uint32_t *current_sp(void)
{
#if defined(__arm__)
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
#else /* the fake board's host build (hil/fake_board): its frame address is as good */
    return (uint32_t *)__builtin_frame_address(0);
#endif
}

/* Paint from the stack limit up to a margin below our own frame. */
static void __attribute__((noinline)) paint_below(uint32_t *top)
{
    for (volatile uint32_t *p = __stack_limit; p < top; p++) {
        *p = TF_STACK_PAINT;
    }
}

void tf_stack_paint_all(void) { paint_below(current_sp() - 32); }

uint32_t tf_stack_bytes(void)
{
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}

static uint32_t stack_high_water(void)
{
    const uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == TF_STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

void tf_layer_done(uint16_t layer)
{
    const uint64_t now = board_counter();
    if (layer < tf_model_info.n_layers) {
        tf_model_info.layer_counts[layer] = (uint32_t)(now - layer_mark);
    }
    layer_mark = now;
}

tf_run_result_t tf_run_model(void)
{
    tf_run_result_t r;
    for (uint16_t i = 0; i < tf_model_info.n_layers; i++) {
        tf_model_info.layer_counts[i] = 0;
    }
    tf_stack_paint_all();
    board_count_begin();
    board_counter_restart();
    const uint64_t start = board_counter();
    layer_mark = start;
    tf_model_run();
    r.total = board_counter() - start;
    board_count_end();
    r.stack_used = stack_high_water();
    return r;
}
