/*
 * tf_rx_ring - the boards' UART receive ring: the RX interrupt pushes, board_getc() pops.
 *
 * Single producer (the interrupt) and single consumer (main context): each side writes only
 * its own index, so no locking is needed. Included by exactly one file per board (board.c):
 * the ring is that file's static storage, and the two functions inline into the interrupt
 * handler and board_getc() as the code written there did.
 */
#ifndef TF_RX_RING_H
#define TF_RX_RING_H

#include <stdint.h>

#define TF_RX_RING 2048u /* bytes; a power of two */

static volatile uint8_t tf_rx_ring[TF_RX_RING];
static volatile uint32_t tf_rx_head, tf_rx_tail;

/* Store a received byte; a full ring drops it (the frame CRC catches it, the host resends). */
static inline void tf_rx_ring_push(uint8_t byte)
{
    const uint32_t next = (tf_rx_head + 1u) & (TF_RX_RING - 1u);
    if (next != tf_rx_tail) {
        tf_rx_ring[tf_rx_head] = byte;
        tf_rx_head = next;
    }
}

/* The oldest received byte, or -1 when none is waiting. */
static inline int tf_rx_ring_pop(void)
{
    if (tf_rx_tail == tf_rx_head) {
        return -1;
    }
    const uint8_t byte = tf_rx_ring[tf_rx_tail];
    tf_rx_tail = (tf_rx_tail + 1u) & (TF_RX_RING - 1u);
    return byte;
}

#endif /* TF_RX_RING_H */
