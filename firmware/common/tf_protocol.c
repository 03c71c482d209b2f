/* Frame codec: COBS + CRC-32. See tf_protocol.h for the format. */
#include "tf_protocol.h"

#include "tf_board.h"

/* Nibble-wise CRC-32 (IEEE, reflected 0xEDB88320): a 64-byte table instead of 1 KB. */
uint32_t tf_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    static const uint32_t table[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ table[crc & 0xFu];
        crc = (crc >> 4) ^ table[crc & 0xFu];
    }
    return ~crc;
}

#define RAW_MAX (TF_MAX_PAYLOAD + TF_FRAME_OVERHEAD)

/* Receive state: COBS-decoded bytes of the frame in progress. */
static uint8_t rx_raw[RAW_MAX];
static uint32_t rx_len;
static uint8_t rx_code;     /* bytes left in the current COBS group, incl. the code byte */
static uint8_t rx_code_max; /* the group's code: 0xFF means no implicit zero follows */
static uint8_t rx_overflow;

static void rx_restart(void)
{
    rx_len = 0;
    rx_code = 0;
    rx_code_max = 0xFF;
    rx_overflow = 0;
}

static int rx_finish(tf_frame_t *out)
{
    const uint32_t n = rx_len;
    const int overflow = rx_overflow;
    const int cobs_ok = rx_code == 0;
    rx_restart();
    out->type = n > 0 ? rx_raw[0] : 0;
    out->seq = n > 1 ? rx_raw[1] : 0;
    if (n == 0 && cobs_ok && !overflow) {
        return 0; /* empty frame: a bare delimiter, used by hosts to flush a partial frame */
    }
    if (overflow) {
        return -TF_ERR_OVERFLOW;
    }
    if (!cobs_ok || n < TF_FRAME_OVERHEAD) {
        return -TF_ERR_BAD_FRAME;
    }
    const uint16_t len = tf_get_u16(rx_raw + 2);
    if ((uint32_t)len + TF_FRAME_OVERHEAD != n) {
        return -TF_ERR_BAD_FRAME;
    }
    if (tf_crc32(0, rx_raw, n - 4) != tf_get_u32(rx_raw + n - 4)) {
        return -TF_ERR_BAD_CRC;
    }
    out->len = len;
    for (uint32_t i = 0; i < len; i++) {
        out->payload[i] = rx_raw[4 + i];
    }
    return 1;
}

static void rx_store(uint8_t byte)
{
    if (rx_len < RAW_MAX) {
        rx_raw[rx_len++] = byte;
    } else {
        rx_overflow = 1;
    }
}

int tf_frame_feed(uint8_t byte, tf_frame_t *out)
{
    if (rx_code_max == 0) {
        rx_restart(); /* first call */
    }
    if (byte == 0) {
        return rx_finish(out);
    }
    if (rx_code == 0) {
        /* A new COBS group: the previous one (unless it was a full 0xFF group) ends in 0. */
        if (rx_code_max != 0xFF) {
            rx_store(0);
        }
        rx_code = byte;
        rx_code_max = byte;
    } else {
        rx_store(byte);
    }
    rx_code--;
    return 0;
}

/* COBS encoder streaming straight to the UART: one group of up to 254 data bytes at a time. */
static void cobs_send(const uint8_t *data, uint32_t len)
{
    uint32_t start = 0;
    for (;;) {
        uint32_t end = start;
        while (end < len && data[end] != 0 && end - start < 254u) {
            end++;
        }
        board_putc((uint8_t)(end - start + 1u));
        for (uint32_t i = start; i < end; i++) {
            board_putc(data[i]);
        }
        if (end == len) {
            break;
        }
        /* A group ended by a zero stands for it: skip it. A full group (code 0xFF) stands
         * for no zero, even when one comes next. */
        const int zero = end - start < 254u && data[end] == 0;
        start = zero ? end + 1u : end;
        if (zero && start == len) {
            board_putc(1); /* a trailing zero needs an empty final group */
            break;
        }
    }
    board_putc(0);
}

void tf_frame_send(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t len)
{
    static uint8_t tx_raw[RAW_MAX];
    if (len > TF_MAX_PAYLOAD) {
        len = TF_MAX_PAYLOAD;
    }
    tx_raw[0] = type;
    tx_raw[1] = seq;
    tf_put_u16(tx_raw + 2, len);
    for (uint32_t i = 0; i < len; i++) {
        tx_raw[4 + i] = payload[i];
    }
    tf_put_u32(tx_raw + 4 + len, tf_crc32(0, tx_raw, 4u + len));
    cobs_send(tx_raw, 8u + len);
}
