/*
 * host_board.c - tf_board.h for a host (x86) build of the firmware: the fake board's MCU.
 *
 * hil/fake_board builds tf_app.c, the protocol, the runtime, the kernels and the generated
 * model exactly as the firmware does, with this file in place of boards/stm32f746/board.c,
 * and runs it on the far end of a pseudo-terminal. It answers as the STM32F746 build does:
 * board "stm32f746", counts in cycles at 216 MHz.
 *
 * UART: file descriptor 0 (receive) and 1 (transmit), both the pty's master side. Bytes are
 *   sent in one write when the firmware next waits for input (a byte per write would be a
 *   system call per byte); board_getc() blocks instead of polling, so an idle fake board
 *   costs no CPU (the real loop spins on an empty ring, which nothing can tell apart).
 * Counter: cycles of a model, deterministic like QEMU's instruction count: one per basic
 *   block the firmware's code executes (its sources are built with -fsanitize-coverage=
 *   trace-pc, which calls __sanitizer_cov_trace_pc at each block; this file is not) plus a
 *   miss penalty from a 4 KB direct-mapped instruction cache of 32-byte lines, the size of
 *   the STM32F746's. So, as on the board with its caches on, the first run after a reset
 *   counts more (cold cache) and warm runs of the same input repeat (what runs between them,
 *   the protocol's code, can leave a few lines different). Host code, not Cortex-M7 timing.
 * Stack: tf_app_main (tf_app.c's main, renamed by -Dmain=tf_app_main) runs on a static
 *   stack, __stack_limit..__stack_top, the symbols the runtime paints and measures; host
 *   frames are larger than Cortex-M7 ones, so the high-water mark is the host's.
 * Reset: the process executes itself again (.bss cleared, BOOT sent again).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "tf_board.h"

#undef main /* the build renames tf_app.c's main to tf_app_main; this file has the real one */

#define TF_HOST_STACK_BYTES 65536
#define CLOCK_HZ 216000000u /* what INFO reports: the board's core clock */

int tf_app_main(void);

uint32_t __stack_limit[TF_HOST_STACK_BYTES / 4] __attribute__((aligned(16)));
__asm__(".globl __stack_top\n.set __stack_top, __stack_limit + 65536");

static char **saved_argv;
static uint8_t tx[4096];
static size_t tx_len;
static uint8_t rx[4096];
static size_t rx_pos, rx_len;
static uint64_t counter_base;

#define ICACHE_LINES 128u /* 4 KB / 32 B */
#define LINE_SHIFT 5
#define MISS_CYCLES 8u /* a line fill from flash: 7 wait states at 216 MHz, +1 */
static uint64_t cycles;
static uintptr_t icache[ICACHE_LINES]; /* the line each slot holds; 0: none (no code there) */

static void tx_flush(void)
{
    size_t done = 0;
    while (done < tx_len) {
        const ssize_t n = write(1, tx + done, tx_len - done);
        if (n <= 0) {
            exit(0); /* the pty is gone: the fake board was unplugged */
        }
        done += (size_t)n;
    }
    tx_len = 0;
}

void board_init(void) {}

void board_putc(uint8_t byte)
{
    if (tx_len == sizeof tx) {
        tx_flush();
    }
    tx[tx_len++] = byte;
}

int board_getc(void)
{
    if (rx_pos == rx_len) {
        tx_flush();
        const ssize_t n = read(0, rx, sizeof rx);
        if (n <= 0) {
            exit(0);
        }
        rx_pos = 0;
        rx_len = (size_t)n;
    }
    return rx[rx_pos++];
}

static void run_app(void) { (void)tf_app_main(); }

void __sanitizer_cov_trace_pc(void);
void __sanitizer_cov_trace_pc(void)
{
    const uintptr_t line = (uintptr_t)__builtin_return_address(0) >> LINE_SHIFT;
    uintptr_t *slot = &icache[line % ICACHE_LINES];
    cycles += 1u;
    if (*slot != line) {
        *slot = line;
        cycles += MISS_CYCLES;
    }
}

uint64_t board_counter(void) { return cycles - counter_base; }

void board_counter_restart(void) { counter_base = cycles; }

/* As the STM32F746's: nothing masked, the pty's bytes are read between requests only. */
void board_count_begin(void) {}
void board_count_end(void) {}

uint8_t board_count_unit(void) { return TF_UNIT_CYCLES; }

uint32_t board_clock_hz(void) { return CLOCK_HZ; }

const char *board_name(void) { return "stm32f746"; }

void board_halt(void)
{
    tx_flush();
    for (;;) {
        pause(); /* as the board waits for a debugger or a reset: the probe restarts us */
    }
}

void board_reset(void)
{
    tx_flush();
    execv("/proc/self/exe", saved_argv);
    abort();
}

int main(int argc, char **argv)
{
    (void)argc;
    saved_argv = argv;
    static ucontext_t host, app;
    if (getcontext(&app) != 0) {
        return 1;
    }
    app.uc_stack.ss_sp = __stack_limit;
    app.uc_stack.ss_size = sizeof __stack_limit;
    app.uc_link = &host;
    makecontext(&app, run_app, 0);
    return swapcontext(&host, &app) == 0 ? 0 : 1;
}
