/*
 * tf_board.h - what the app needs from a board: a serial port, a counter, exit/reset.
 *
 * Each board in boards/<name>/board.c implements these. The counter is monotonic and 64-bit;
 * its unit is the board's TF_COUNT_UNIT (instructions under QEMU, cycles on silicon).
 */
#ifndef TF_BOARD_H
#define TF_BOARD_H

#include <stdint.h>

enum { TF_UNIT_INSTRUCTIONS = 0, TF_UNIT_CYCLES = 1 };

void board_init(void);
/* Blocking transmit of one byte; also usable from the fault handler (polled). */
void board_putc(uint8_t byte);
/* Next received byte, or -1 when none is waiting (bytes arrive by interrupt). */
int board_getc(void);
uint64_t board_counter(void);
/* Restart the counter from 0 so that what follows counts identically run to run. */
void board_counter_restart(void);
/* Around the counted run. Bytes that arrive mid-run (a PING, the next queued request) would
 * run the receive interrupt inside the count; a board whose link can wait masks it. */
void board_count_begin(void);
void board_count_end(void);
uint8_t board_count_unit(void);
uint32_t board_clock_hz(void);
const char *board_name(void);
/* Stop after a fault: the emulator exits, a board waits for the debugger or a reset. */
void board_halt(void) __attribute__((noreturn));
void board_reset(void) __attribute__((noreturn));

#endif /* TF_BOARD_H */
