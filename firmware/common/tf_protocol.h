/*
 * tf_protocol.h - the serial protocol between the host harness and the firmware.
 *
 * Python twin: tinyformer/hil/protocol.py (keep the two in step; PROTOCOL_VERSION guards it).
 *
 * A frame before encoding (little endian):
 *     u8 type | u8 seq | u16 len | payload[len] | u32 crc32(type .. payload)
 * On the wire it is COBS-encoded and terminated by one 0x00 byte, so a receiver resyncs on
 * the next 0x00 after any damage. CRC-32 is the IEEE 802.3 polynomial (zlib's crc32).
 * Every request gets exactly one reply with the request's seq: the reply type, or ERROR.
 *
 * Exactly-once inference: the model overwrites its input (it lives in the arena) and a reset
 * wipes it, so RUN names the input it expects (CRC-32 of all input bytes) and runs only on
 * an input written by INPUT since the last RUN whose CRC matches; otherwise STALE_INPUT and
 * the host sends INPUT again. RUN_R echoes that CRC and carries the CRCs of the output and of
 * the layer counts, so the host can prove what it READs is the output of its input.
 *
 * Bulk input: an emulator can fill the board's preload region (__tf_preload_start ..
 * __tf_preload_end, link.ld; empty on silicon) with many inputs before boot. LOAD copies input
 * number i of it to the model input, as INPUT would have written it, at memory speed instead
 * of the emulated UART's ~14 KB/s. RUN still names the input by CRC, so a region that holds
 * something else, or was wiped, is refused exactly like a lost INPUT.
 */
#ifndef TF_PROTOCOL_H
#define TF_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define TF_PROTOCOL_VERSION 2u
#define TF_MAX_PAYLOAD 1024u
#define TF_FRAME_OVERHEAD 8u /* type, seq, len, crc */

enum tf_msg_type {
    /* host -> device */
    TF_MSG_INFO = 0x01,  /* -> INFO_R */
    TF_MSG_INPUT = 0x02, /* u32 offset, data -> ACK(u32 end) */
    TF_MSG_RUN = 0x03,   /* u32 input_crc -> RUN_R, or ERROR(STALE_INPUT) */
    TF_MSG_READ = 0x04,  /* u8 what, u8 0, u16 len, u32 offset -> DATA(u32 offset, data) */
    TF_MSG_RESET = 0x05, /* -> RESET_R, then the device reboots and sends BOOT */
    TF_MSG_PING = 0x06,  /* -> PONG: the smallest "are you idle?" while a RUN reply is due */
    TF_MSG_LOAD = 0x07,  /* u32 index -> ACK(u32 input_bytes): input i of the preload region */
    /* device -> host */
    TF_MSG_INFO_R = 0x81,
    TF_MSG_ACK = 0x82,
    TF_MSG_RUN_R = 0x83, /* u32 total lo, hi, u8 unit, u8 0, u16 n_layers, u32 stack_used,
                          * stack_bytes, output_bytes, input_crc, output_crc, counts_crc */
    TF_MSG_DATA = 0x84,
    TF_MSG_RESET_R = 0x85,
    TF_MSG_BOOT = 0x86,  /* unsolicited, seq 0, once after start-up */
    TF_MSG_PONG = 0x87,
    TF_MSG_ERROR = 0xE0, /* u8 code, u8 offending type, u16 0 */
    TF_MSG_FAULT = 0xEF, /* unsolicited: u32 pc, lr, sp, xpsr, cfsr, hfsr, mmfar, bfar */
};

enum tf_read_what { TF_READ_OUTPUT = 0, TF_READ_LAYER_COUNTS = 1 };

enum tf_error_code {
    TF_ERR_BAD_CRC = 1,
    TF_ERR_BAD_FRAME = 2, /* COBS or length inconsistent */
    TF_ERR_UNKNOWN_TYPE = 3,
    TF_ERR_BAD_ARGS = 4, /* offset/length out of range, LOAD past the preload region */
    TF_ERR_OVERFLOW = 5, /* frame longer than the receive buffer */
    TF_ERR_STALE_INPUT = 6, /* RUN: input consumed by a run, wiped by a reset, or not the one named */
};

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint16_t len;
    uint8_t payload[TF_MAX_PAYLOAD];
} tf_frame_t;

uint32_t tf_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Feed one received byte. Returns 1 when a complete valid frame is in *out, 0 when more bytes
 * are needed, or -tf_error_code when a damaged frame ended (*out->type/seq hold what could be
 * recovered of it, for the error reply). */
int tf_frame_feed(uint8_t byte, tf_frame_t *out);

/* Encode and send a frame through board_putc. */
void tf_frame_send(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t len);

/* Little-endian helpers for payloads. */
static inline void tf_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void tf_put_u32(uint8_t *p, uint32_t v)
{
    tf_put_u16(p, (uint16_t)v);
    tf_put_u16(p + 2, (uint16_t)(v >> 16));
}
static inline uint16_t tf_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tf_get_u32(const uint8_t *p)
{
    return (uint32_t)tf_get_u16(p) | ((uint32_t)tf_get_u16(p + 2) << 16);
}

#endif /* TF_PROTOCOL_H */
