/* The firmware's main loop: serve protocol requests for the linked model. */
#include <string.h>

#include "tf_board.h"
#include "tf_model.h"
#include "tf_protocol.h"
#include "tf_runtime.h"

#ifndef TF_BUILD_ID
#define TF_BUILD_ID "unknown"
#endif

static tf_frame_t req;
static uint8_t reply[TF_MAX_PAYLOAD];
/* Set by INPUT, cleared by RUN (which overwrites the input) and by a reset (.bss): tracking
 * consumption costs one byte, where keeping the input safe from the model would cost its size. */
static uint8_t input_fresh;

static void send_error(uint8_t seq, uint8_t code, uint8_t type)
{
    const uint8_t p[4] = {code, type, 0, 0};
    tf_frame_send(TF_MSG_ERROR, seq, p, sizeof p);
}

static void handle_info(void)
{
    memset(reply, 0, 84);
    tf_put_u16(reply + 0, TF_PROTOCOL_VERSION);
    reply[2] = board_count_unit();
    tf_put_u32(reply + 4, board_clock_hz());
    tf_put_u32(reply + 8, tf_model_info.input_bytes);
    tf_put_u32(reply + 12, tf_model_info.output_bytes);
    tf_put_u32(reply + 16, tf_model_info.arena_bytes);
    tf_put_u32(reply + 20, tf_stack_bytes());
    tf_put_u16(reply + 24, tf_model_info.n_layers);
    tf_put_u16(reply + 26, TF_MAX_PAYLOAD);
    memcpy(reply + 28, tf_model_info.hash, 32);
    strncpy((char *)reply + 60, board_name(), 23);
    const char *texts[2] = {tf_model_info.name, TF_BUILD_ID " gcc " __VERSION__};
    uint32_t n = 84;
    for (int i = 0; i < 2; i++) {
        const size_t len = strnlen(texts[i], 200);
        memcpy(reply + n, texts[i], len);
        n += (uint32_t)len;
        reply[n++] = 0;
    }
    tf_frame_send(TF_MSG_INFO_R, req.seq, reply, (uint16_t)n);
}

static void handle_input(void)
{
    if (req.len < 4) {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    const uint32_t offset = tf_get_u32(req.payload), len = req.len - 4u;
    if (offset > tf_model_info.input_bytes || len > tf_model_info.input_bytes - offset) {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    memcpy(tf_model_input() + offset, req.payload + 4, len);
    input_fresh = 1;
    tf_put_u32(reply, offset + len);
    tf_frame_send(TF_MSG_ACK, req.seq, reply, 4);
}

/* The preload region, defined by the link.ld of a board whose emulator fills it before boot;
 * weak, so elsewhere (silicon, a host build of this file) both are 0: an empty region. */
extern const uint8_t __tf_preload_start[] __attribute__((weak));
extern const uint8_t __tf_preload_end[] __attribute__((weak));

static void handle_load(void)
{
    if (req.len != 4) {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    const uint32_t size = (uint32_t)(__tf_preload_end - __tf_preload_start);
    const uint32_t n = tf_model_info.input_bytes, index = tf_get_u32(req.payload);
    if (n == 0 || index >= size / n) {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    memcpy(tf_model_input(), __tf_preload_start + index * n, n);
    input_fresh = 1;
    tf_put_u32(reply, n);
    tf_frame_send(TF_MSG_ACK, req.seq, reply, 4);
}

static void handle_run(void)
{
    if (req.len != 4) {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    /* The CRCs are taken outside tf_run_model(), so they are not in the counts. */
    const uint32_t input_crc = tf_crc32(0, (const uint8_t *)tf_model_input(),
                                        tf_model_info.input_bytes);
    if (!input_fresh || input_crc != tf_get_u32(req.payload)) {
        send_error(req.seq, TF_ERR_STALE_INPUT, req.type);
        return;
    }
    input_fresh = 0;
    const tf_run_result_t r = tf_run_model();
    tf_put_u32(reply + 0, (uint32_t)r.total);
    tf_put_u32(reply + 4, (uint32_t)(r.total >> 32));
    reply[8] = board_count_unit();
    reply[9] = 0;
    tf_put_u16(reply + 10, tf_model_info.n_layers);
    tf_put_u32(reply + 12, r.stack_used);
    tf_put_u32(reply + 16, tf_stack_bytes());
    tf_put_u32(reply + 20, tf_model_info.output_bytes);
    tf_put_u32(reply + 24, input_crc);
    tf_put_u32(reply + 28, tf_crc32(0, (const uint8_t *)tf_model_output(),
                                    tf_model_info.output_bytes));
    tf_put_u32(reply + 32, tf_crc32(0, (const uint8_t *)tf_model_info.layer_counts,
                                    4u * tf_model_info.n_layers));
    tf_frame_send(TF_MSG_RUN_R, req.seq, reply, 36);
}

static void handle_read(void)
{
    if (req.len < 8) {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    const uint8_t what = req.payload[0];
    const uint32_t len = tf_get_u16(req.payload + 2), offset = tf_get_u32(req.payload + 4);
    const uint8_t *src;
    uint32_t size;
    if (what == TF_READ_OUTPUT) {
        src = (const uint8_t *)tf_model_output();
        size = tf_model_info.output_bytes;
    } else if (what == TF_READ_LAYER_COUNTS) {
        src = (const uint8_t *)tf_model_info.layer_counts;
        size = 4u * tf_model_info.n_layers;
    } else {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    if (offset > size || len > size - offset || len > TF_MAX_PAYLOAD - 4u) {
        send_error(req.seq, TF_ERR_BAD_ARGS, req.type);
        return;
    }
    tf_put_u32(reply, offset);
    memcpy(reply + 4, src + offset, len);
    tf_frame_send(TF_MSG_DATA, req.seq, reply, (uint16_t)(4u + len));
}

static void dispatch(void)
{
    switch (req.type) {
    case TF_MSG_INFO:
        handle_info();
        break;
    case TF_MSG_INPUT:
        handle_input();
        break;
    case TF_MSG_LOAD:
        handle_load();
        break;
    case TF_MSG_RUN:
        handle_run();
        break;
    case TF_MSG_READ:
        handle_read();
        break;
    case TF_MSG_PING:
        tf_frame_send(TF_MSG_PONG, req.seq, 0, 0);
        break;
    case TF_MSG_RESET:
        tf_frame_send(TF_MSG_RESET_R, req.seq, 0, 0);
        board_reset();
    default:
        send_error(req.seq, TF_ERR_UNKNOWN_TYPE, req.type);
        break;
    }
}

int main(void)
{
    board_init();
    tf_stack_paint_all();
    tf_frame_send(TF_MSG_BOOT, 0, 0, 0);
    for (;;) {
        const int c = board_getc();
        if (c < 0) {
            continue;
        }
        const int status = tf_frame_feed((uint8_t)c, &req);
        if (status > 0) {
            dispatch();
        } else if (status < 0) {
            send_error(req.seq, (uint8_t)-status, req.type);
        }
    }
}
