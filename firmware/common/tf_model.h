/*
 * tf_model.h - the interface every generated model implements (see tinyformer/engine).
 *
 * The input and output tensors live in the model's static arena: the host writes the input
 * straight to tf_model_input() and reads the output from tf_model_output() after a run.
 * tf_model_run() calls tf_layer_done(i) after layer i so the runtime can count per layer.
 */
#ifndef TF_MODEL_H
#define TF_MODEL_H

#include <stdint.h>

typedef struct {
    const char *name;
    uint8_t hash[32]; /* sha256 of the compiled model (IR + weights) */
    uint32_t input_bytes;
    uint32_t output_bytes;
    uint32_t arena_bytes;
    uint16_t n_layers;
    uint32_t *layer_counts; /* n_layers entries, filled by the runtime */
} tf_model_info_t;

extern const tf_model_info_t tf_model_info;

int8_t *tf_model_input(void);
const int8_t *tf_model_output(void);
void tf_model_run(void);

/* Provided by the runtime. */
void tf_layer_done(uint16_t layer);

#endif /* TF_MODEL_H */
