/*
 * Board support for the STM32F746 (Nucleo-F746ZG): 216 MHz from the HSI, caches on, USART3
 * on the ST-LINK virtual COM port, DWT cycle counting.
 *
 * Register addresses and bit positions are from the STM32F75xxx/74xxx reference manual
 * (RM0385); the Cortex-M7 system registers are in tf_cortexm.h. CMSIS and the ST HAL are not
 * dependencies, so every register this file touches is defined here.
 *
 * Clock source: the HSI (16 MHz RC, factory trimmed to +-1 % at 25 C), not the HSE. The
 * Nucleo's HSE input is the ST-LINK's 8 MHz MCO in bypass mode, which depends on solder
 * bridges and on the ST-LINK firmware, and the 32F746G-DISCO has a 25 MHz crystal instead; the
 * HSI exists on every STM32F746 with no board wiring. At room temperature its error is well
 * inside what 8N1 at 16x oversampling tolerates (a few %), and the measurements are in core
 * cycles, which do not depend on how exact the clock is.
 *
 * If a clock step does not complete (a ready flag never comes), the board stays on the HSI at
 * 16 MHz rather than hanging: the UART still works and INFO reports the real clock.
 */
#include <stdint.h>

#include "tf_board.h"
#include "tf_cortexm.h"
#include "tf_rx_ring.h"
#include "tf_vectors.h"

/* --- RCC (RM0385 5.3) ------------------------------------------------------------------ */
#define RCC_BASE 0x40023800u
#define RCC_CR TF_REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR TF_REG(RCC_BASE + 0x04u)
#define RCC_CFGR TF_REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR TF_REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR TF_REG(RCC_BASE + 0x40u)
#define RCC_DCKCFGR2 TF_REG(RCC_BASE + 0x90u)

#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)

#define PLLCFGR_M(m) ((uint32_t)(m) << 0)    /* PLLM[5:0]: VCO input = source / M */
#define PLLCFGR_N(n) ((uint32_t)(n) << 6)    /* PLLN[14:6]: VCO output = input * N */
#define PLLCFGR_P_DIV2 (0u << 16)            /* PLLP[17:16]: 00 -> SYSCLK = VCO / 2 */
#define PLLCFGR_SRC_HSI (0u << 22)           /* PLLSRC: 0 = HSI */
#define PLLCFGR_Q(q) ((uint32_t)(q) << 24)   /* PLLQ[27:24]: 48 MHz domain = VCO / Q */
#define PLLCFGR_FIELDS 0x0F437FFFu           /* M, N, P, SRC, Q; the rest is reserved */

#define CFGR_SW_MASK (3u << 0)
#define CFGR_SW_HSI (0u << 0)
#define CFGR_SW_PLL (2u << 0)
#define CFGR_SWS_MASK (3u << 2)
#define CFGR_SWS_HSI (0u << 2)
#define CFGR_SWS_PLL (2u << 2)
#define CFGR_HPRE_MASK (0xFu << 4)
#define CFGR_HPRE_DIV1 (0u << 4)
#define CFGR_PPRE1_MASK (7u << 10)
#define CFGR_PPRE1_DIV4 (5u << 10) /* 101: APB1 = HCLK / 4 */
#define CFGR_PPRE2_MASK (7u << 13)
#define CFGR_PPRE2_DIV2 (4u << 13) /* 100: APB2 = HCLK / 2 */

#define AHB1ENR_GPIODEN (1u << 3)
#define APB1ENR_USART3EN (1u << 18)
#define APB1ENR_PWREN (1u << 28)
#define DCKCFGR2_USART3SEL_MASK (3u << 4) /* 00 = PCLK1 */

/* --- PWR (RM0385 4.4) ------------------------------------------------------------------- */
#define PWR_BASE 0x40007000u
#define PWR_CR1 TF_REG(PWR_BASE + 0x00u)
#define PWR_CSR1 TF_REG(PWR_BASE + 0x04u)
#define PWR_CR1_VOS_SCALE1 (3u << 14)
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)

/* --- Flash interface (RM0385 3.7) ------------------------------------------------------ */
#define FLASH_ACR TF_REG(0x40023C00u)
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN (1u << 9)
#define FLASH_ACR_ARTRST (1u << 11)

/* --- GPIOD (RM0385 6.4) ------------------------------------------------------------------ */
#define GPIOD_BASE 0x40020C00u
#define GPIOD_MODER TF_REG(GPIOD_BASE + 0x00u)
#define GPIOD_OTYPER TF_REG(GPIOD_BASE + 0x04u)
#define GPIOD_OSPEEDR TF_REG(GPIOD_BASE + 0x08u)
#define GPIOD_PUPDR TF_REG(GPIOD_BASE + 0x0Cu)
#define GPIOD_AFRH TF_REG(GPIOD_BASE + 0x24u) /* alternate function of pins 8..15 */

/* --- USART3 (RM0385 31.8) ---------------------------------------------------------------- */
#define USART3_BASE 0x40004800u
#define USART3_CR1 TF_REG(USART3_BASE + 0x00u)
#define USART3_CR2 TF_REG(USART3_BASE + 0x04u)
#define USART3_CR3 TF_REG(USART3_BASE + 0x08u)
#define USART3_BRR TF_REG(USART3_BASE + 0x0Cu)
#define USART3_ISR TF_REG(USART3_BASE + 0x1Cu)
#define USART3_ICR TF_REG(USART3_BASE + 0x20u)
#define USART3_RDR TF_REG(USART3_BASE + 0x24u)
#define USART3_TDR TF_REG(USART3_BASE + 0x28u)

#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_ISR_PE (1u << 0)
#define USART_ISR_FE (1u << 1)
#define USART_ISR_NF (1u << 2)
#define USART_ISR_ORE (1u << 3)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TC (1u << 6)
#define USART_ISR_TXE (1u << 7)
#define USART_ICR_ERRORS 0xFu /* PECF | FECF | NCF | ORECF, same bits as in ISR */
#define USART3_IRQ 39u

#define BAUD 115200u
#define HSI_HZ 16000000u
#define SYSCLK_HZ 216000000u

/* How long to wait for a ready flag: ~10^6 polls is tens of ms even at 216 MHz, while PLL
 * lock and the over-drive switch take well under 1 ms. */
#define READY_SPINS 1000000u

extern const tf_vector_t tf_vector_table[];

static uint32_t sysclk_hz = HSI_HZ, pclk1_hz = HSI_HZ;
static uint32_t cyc_last, cyc_high; /* 64-bit extension of CYCCNT (main context only) */
/* Until USART3 is clocked its registers read 0, so TXE never comes: a fault during clock
 * set-up must not spin forever in board_putc. */
static volatile int uart_ready;

void USART3_IRQHandler(void);
void SysTick_Handler(void);

/* Poll until (reg & mask) == value; false when it never happens. */
static int wait_for(volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    for (uint32_t i = 0; i < READY_SPINS; i++) {
        if ((*reg & mask) == value) {
            return 1;
        }
    }
    return 0;
}

/* Run from the bare HSI (the reset state): the fallback when the PLL path fails, and the
 * starting point that allows the PLL to be reconfigured (PLLCFGR is ignored while PLLON). */
static void clock_to_hsi(void)
{
    RCC_CR |= RCC_CR_HSION;
    (void)wait_for(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY);
    RCC_CFGR = (RCC_CFGR & ~CFGR_SW_MASK) | CFGR_SW_HSI;
    (void)wait_for(&RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_HSI);
    /* Prescalers back to /1: the HSI's 16 MHz is legal on every bus. */
    RCC_CFGR &= ~(CFGR_HPRE_MASK | CFGR_PPRE1_MASK | CFGR_PPRE2_MASK);
    RCC_CR &= ~RCC_CR_PLLON;
    (void)wait_for(&RCC_CR, RCC_CR_PLLRDY, 0u);
    sysclk_hz = HSI_HZ;
    pclk1_hz = HSI_HZ;
}

/* SYSCLK = 216 MHz following RM0385 4.1.4 "Entering Over-drive mode"; 0 when a step fails. */
static int clock_to_216mhz(void)
{
    /* PWR registers are clocked from APB1; the read back makes sure the enable has taken
     * effect before the first PWR access (RCC enable-to-access delay). */
    RCC_APB1ENR |= APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    /* Voltage scale 1 (the reset value on the F7, written to be sure): the highest core
     * voltage, needed for anything above 180 MHz. */
    PWR_CR1 |= PWR_CR1_VOS_SCALE1;

    /* PLL from the HSI: 16 MHz / M=8 = 2 MHz VCO input (the value RM0385 recommends to limit
     * jitter), * N=216 = 432 MHz VCO (the top of its 100..432 MHz range), / P=2 = 216 MHz.
     * Q=9 gives the 48 MHz USB/SDMMC clock (432 / 9), unused here but kept legal. */
    RCC_PLLCFGR = (RCC_PLLCFGR & ~PLLCFGR_FIELDS) | PLLCFGR_SRC_HSI | PLLCFGR_M(8) |
                  PLLCFGR_N(216) | PLLCFGR_P_DIV2 | PLLCFGR_Q(9);
    RCC_CR |= RCC_CR_PLLON;

    /* Over-drive: 216 MHz needs it (without it the limit is 180 MHz). Enable it, wait until it
     * is ready, then switch the regulator to it and wait again. The PLL must be on first. */
    PWR_CR1 |= PWR_CR1_ODEN;
    if (!wait_for(&PWR_CSR1, PWR_CSR1_ODRDY, PWR_CSR1_ODRDY)) {
        return 0;
    }
    PWR_CR1 |= PWR_CR1_ODSWEN;
    if (!wait_for(&PWR_CSR1, PWR_CSR1_ODSWRDY, PWR_CSR1_ODSWRDY)) {
        return 0;
    }

    /* Flash: 7 wait states for 210..216 MHz at 2.7..3.6 V (RM0385 table 5), set and read back
     * BEFORE the clock goes up. The ART accelerator and prefetch only serve fetches over the
     * ITCM bus (0x0020_0000); this image runs from the AXIM alias (0x0800_0000) where the
     * M7's L1 caches do that job, but they cost nothing and help code placed in ITCM flash.
     * The ART is reset while disabled so it starts empty. */
    FLASH_ACR = (FLASH_ACR & ~(FLASH_ACR_LATENCY_MASK | FLASH_ACR_ARTEN)) | 7u;
    FLASH_ACR |= FLASH_ACR_ARTRST;
    FLASH_ACR &= ~FLASH_ACR_ARTRST;
    FLASH_ACR |= FLASH_ACR_ARTEN | FLASH_ACR_PRFTEN;
    if ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != 7u) {
        return 0;
    }

    /* Bus prescalers before the switch: AHB /1 (216 MHz), APB1 /4 (54 MHz, max 54),
     * APB2 /2 (108 MHz, max 108). */
    RCC_CFGR = (RCC_CFGR & ~(CFGR_HPRE_MASK | CFGR_PPRE1_MASK | CFGR_PPRE2_MASK)) |
               CFGR_HPRE_DIV1 | CFGR_PPRE1_DIV4 | CFGR_PPRE2_DIV2;

    if (!wait_for(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        return 0;
    }
    RCC_CFGR = (RCC_CFGR & ~CFGR_SW_MASK) | CFGR_SW_PLL;
    if (!wait_for(&RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_PLL)) {
        return 0;
    }
    sysclk_hz = SYSCLK_HZ;
    pclk1_hz = SYSCLK_HZ / 4u;
    return 1;
}

static void clock_init(void)
{
    /* A core-only reset (a debugger's emulated reset) keeps the RCC state: the PLL may be
     * driving SYSCLK already, and PLLCFGR cannot change while it runs. */
    clock_to_hsi();
    if (!clock_to_216mhz()) {
        clock_to_hsi();
    }
}

/* L1 I- and D-cache on (ARMv7-M ARM B2.2.7; Cortex-M7 TRM "Initializing and enabling the L1
 * cache"). The caches hold garbage after reset: invalidate, then enable. No DMA touches
 * memory in this firmware, so the write-back D-cache needs no clean/invalidate later. The
 * DTCM (0x2000_0000, 64 KB) is never cached; SRAM1/SRAM2 above it are. */
static void cache_init(void)
{
    tf_dsb();
    tf_isb();
    SCB_ICIALLU = 0u;
    tf_dsb();
    tf_isb();
    SCB_CCR |= CCR_IC;
    tf_dsb();
    tf_isb();

    /* The D-cache has no invalidate-all: walk every set and way of the L1 data cache. */
    SCB_CSSELR = 0u; /* level 1, data cache */
    tf_dsb();
    const uint32_t ccsidr = SCB_CCSIDR;
    const uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;  /* NumSets - 1 */
    const uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;    /* Associativity - 1 */
    const uint32_t line_shift = (ccsidr & 0x7u) + 4u;       /* log2(line bytes) */
    const uint32_t way_shift = ways > 1u ? (uint32_t)__builtin_clz(ways - 1u) : 0u;
    for (uint32_t set = 0; set < sets; set++) {
        for (uint32_t way = 0; way < ways; way++) {
            SCB_DCISW = (way << way_shift) | (set << line_shift);
        }
    }
    tf_dsb();
    SCB_CCR |= CCR_DC;
    tf_dsb();
    tf_isb();
}

/* USART3 on PD8 (TX) / PD9 (RX), AF7: wired to the ST-LINK V2-1 virtual COM port. */
static void uart_init(void)
{
    RCC_AHB1ENR |= AHB1ENR_GPIODEN;
    RCC_APB1ENR |= APB1ENR_USART3EN;
    (void)RCC_APB1ENR; /* read back: clocks running before the first access */
    RCC_DCKCFGR2 &= ~DCKCFGR2_USART3SEL_MASK; /* USART3 kernel clock = PCLK1 */

    /* AF7 first, then mode: the pins never drive another alternate function. */
    GPIOD_AFRH = (GPIOD_AFRH & ~0xFFu) | (7u << 0) | (7u << 4);
    GPIOD_OTYPER &= ~((1u << 8) | (1u << 9));                      /* push-pull */
    GPIOD_OSPEEDR = (GPIOD_OSPEEDR & ~(0xFu << 16)) | (0x5u << 16); /* medium speed */
    /* Pull-up on RX: the line idles high even when nothing drives it (no break noise). */
    GPIOD_PUPDR = (GPIOD_PUPDR & ~(0xFu << 16)) | (0x1u << 18);
    GPIOD_MODER = (GPIOD_MODER & ~(0xFu << 16)) | (0xAu << 16); /* 10 = alternate function */

    /* 8N1, 16x oversampling: BRR = f_ck / baud, rounded (54 MHz -> 469, -0.05 %). */
    USART3_CR1 = 0u; /* UE off: BRR and the frame format are written while disabled */
    USART3_CR2 = 0u;
    USART3_CR3 = 0u;
    USART3_BRR = (pclk1_hz + BAUD / 2u) / BAUD;
    USART3_ICR = USART_ICR_ERRORS;
    USART3_CR1 = USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE | USART_CR1_UE;
    uart_ready = 1;
    tf_nvic_enable(USART3_IRQ);
}


void USART3_IRQHandler(void)
{
    /* RXNEIE also fires on overrun (ORE), and ORE stays set until cleared: clear the error
     * flags or the interrupt never stops. A byte with a framing or noise error is kept: the
     * frame CRC rejects it and the host resends. */
    const uint32_t isr = USART3_ISR;
    if (isr & (USART_ISR_ORE | USART_ISR_FE | USART_ISR_NF | USART_ISR_PE)) {
        USART3_ICR = USART_ICR_ERRORS;
    }
    while (USART3_ISR & USART_ISR_RXNE) {
        const uint8_t byte = (uint8_t)USART3_RDR; /* reading RDR clears RXNE */
        tf_rx_ring_push(byte);
    }
}

/* SysTick stays off: a periodic interrupt would add cycles to the measured code. */
void SysTick_Handler(void) {}

void board_init(void)
{
    /* Vectors from the table this image linked at 0x0800_0000, whatever the boot address
     * option bytes made the core fetch its reset vector from (ITCM alias by default). */
    SCB_VTOR = (uint32_t)(uintptr_t)tf_vector_table;
    tf_dsb();
    clock_init();
    cache_init();
    uart_init();
    board_counter_restart();
    tf_enable_irq();
}

void board_putc(uint8_t byte)
{
    if (!uart_ready) {
        return;
    }
    while (!(USART3_ISR & USART_ISR_TXE)) {
    }
    USART3_TDR = byte;
}

/* Wait until the last byte has left the shift register (TC), not just the data register. */
static void uart_drain(void)
{
    if (!uart_ready) {
        return;
    }
    while (!(USART3_ISR & USART_ISR_TXE)) {
    }
    while (!(USART3_ISR & USART_ISR_TC)) {
    }
}

int board_getc(void)
{
    return tf_rx_ring_pop();
}

/* CYCCNT wraps every 2^32 cycles (19.9 s at 216 MHz): count the wraps seen between reads.
 * Exact as long as reads are less than one wrap apart, which holds inside a run (the runtime
 * reads at every layer) and board_counter_restart() starts each run from 0. */
/* The USART's one-byte data register would overrun during a run: the receive interrupt stays
 * on, and counts on the board are compared within a tolerance. */
void board_count_begin(void) {}
void board_count_end(void) {}

uint64_t board_counter(void)
{
    const uint32_t now = DWT_CYCCNT;
    if (now < cyc_last) {
        cyc_high++;
    }
    cyc_last = now;
    return ((uint64_t)cyc_high << 32) | now;
}

/* DWT cycle counter: TRCENA powers the DWT, LAR unlocks its registers on the M7. Done again
 * before every run, not only at boot: a debugger that disconnects (pyOCD does, with
 * resume) writes DEMCR = 0, which stops CYCCNT while the firmware keeps running. */
void board_counter_restart(void)
{
    DCB_DEMCR |= DEMCR_TRCENA;
    DWT_LAR = DWT_LAR_KEY;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    cyc_last = 0u;
    cyc_high = 0u;
}

uint8_t board_count_unit(void) { return TF_UNIT_CYCLES; }
uint32_t board_clock_hz(void) { return sysclk_hz; }
const char *board_name(void) { return "stm32f746"; }

/* After a fault: with a debugger attached, stop at a breakpoint so it shows the context;
 * without one, BKPT would escalate to a lockup, so spin until the reset button. The FAULT
 * frame is drained first so the host gets it either way. */
void board_halt(void)
{
    uart_drain();
    if (DCB_DHCSR & DHCSR_C_DEBUGEN) {
        __asm__ volatile("bkpt #0" ::: "memory");
    }
    for (;;) {
    }
}

/* The RESET_R reply must leave the wire before the USART is reset with the rest of the chip. */
void board_reset(void)
{
    uart_drain();
    tf_system_reset();
}
