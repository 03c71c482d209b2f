/*
 * Board support for QEMU's mps2-an500 (Cortex-M7): CMSDK UART0 and SysTick-based
 * instruction counting.
 *
 * Under `-icount shift=0` every instruction advances virtual time by 1 ns and SysTick runs
 * from the 25 MHz system clock, so one SysTick tick is exactly 40 instructions: the count is
 * exact to 40 instructions and repeatable run to run. DWT is not emulated.
 */
#include <stdint.h>

#include "tf_board.h"
#include "tf_cortexm.h"
#include "tf_rx_ring.h"

#define UART0_BASE 0x40004000u
#define UART_DATA TF_REG(UART0_BASE + 0x00u)
#define UART_STATE TF_REG(UART0_BASE + 0x04u)
#define UART_CTRL TF_REG(UART0_BASE + 0x08u)
#define UART_INTSTATUS TF_REG(UART0_BASE + 0x0Cu) /* write 1 to clear (INTCLEAR) */
#define UART_BAUDDIV TF_REG(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_CTRL_TXEN 0x1u
#define UART_CTRL_RXEN 0x2u
#define UART_CTRL_RXINTEN 0x8u
#define UART_INT_RX 0x2u
#define UART0_RX_IRQ 0u

#define SYSCLK_HZ 25000000u
#define INSTRUCTIONS_PER_TICK 40u
#define SYSTICK_RELOAD 0xFFFFFFu


static volatile uint32_t systick_wraps;

void UART0RX_Handler(void);
void SysTick_Handler(void);

void UART0RX_Handler(void)
{
    /* Clear first, then drain: a byte arriving meanwhile raises the interrupt again. */
    UART_INTSTATUS = UART_INT_RX;
    while (UART_STATE & UART_STATE_RXFULL) {
        const uint8_t byte = (uint8_t)UART_DATA;
        tf_rx_ring_push(byte);
    }
}

void SysTick_Handler(void) { systick_wraps++; }

void board_init(void)
{
    UART_BAUDDIV = SYSCLK_HZ / 115200u;
    UART_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXINTEN;
    tf_nvic_enable(UART0_RX_IRQ);
    board_counter_restart();
    tf_enable_irq();
}

/* Restarting SysTick re-phases QEMU's timer to this instruction, so a run started right
 * after it counts the same instructions every time, not +-1 tick depending on when it began.
 * The first reload from 0 is not a wrap: wait for it with the interrupt off, then clear it. */
void board_counter_restart(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x5u; /* processor clock, enable, no interrupt yet */
    while (SYST_CVR == 0) {
    }
    SCB_ICSR = ICSR_PENDSTCLR;
    systick_wraps = 0;
    SYST_CSR = 0x7u; /* now interrupt on every wrap */
}

/* QEMU stops reading the UART's socket while its one-byte receive buffer is full, so masking
 * the receive interrupt for a run loses no byte: they wait, and the count is the model's
 * alone, whatever the host sent meanwhile. */
void board_count_begin(void) { tf_nvic_disable(UART0_RX_IRQ); }
void board_count_end(void) { tf_nvic_enable(UART0_RX_IRQ); }

void board_putc(uint8_t byte)
{
    while (UART_STATE & UART_STATE_TXFULL) {
    }
    UART_DATA = byte;
}

int board_getc(void)
{
    return tf_rx_ring_pop();
}

uint64_t board_counter(void)
{
    uint32_t wraps, value;
    do { /* re-read if the wrap interrupt ran in between */
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    const uint64_t ticks = (uint64_t)wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - value);
    return ticks * INSTRUCTIONS_PER_TICK;
}

uint8_t board_count_unit(void) { return TF_UNIT_INSTRUCTIONS; }
uint32_t board_clock_hz(void) { return SYSCLK_HZ; }
const char *board_name(void) { return "mps2-an500"; }

/* Semihosting SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown: QEMU exits. */
void board_halt(void)
{
    register uint32_t r0 __asm__("r0") = 0x18u;
    register uint32_t r1 __asm__("r1") = 0x20023u;
    __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

/* QEMU hands every UART byte to the host as it is written, so reset right away. */
void board_reset(void) { tf_system_reset(); }
