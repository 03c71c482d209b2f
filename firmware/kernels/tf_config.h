/*
 * tf_config.h - the model's build switches, for the kernels' C and assembly alike.
 *
 * A compiled model's folder holds tf_model_config.h next to its model.c (written by the
 * code generator, copied into an exported library): TF_ROUNDING_TFLITE 1 for a model
 * imported from TensorFlow Lite, whose kernels then round as TFLite Micro's (tf_math.h).
 * Without that header (the kernels' own tests) every switch is 0. Assembler-safe.
 */
#ifndef TF_CONFIG_H
#define TF_CONFIG_H

#if defined(__has_include)
#if __has_include("tf_model_config.h")
#include "tf_model_config.h"
#endif
#endif
#ifndef TF_ROUNDING_TFLITE
#define TF_ROUNDING_TFLITE 0
#endif

#endif /* TF_CONFIG_H */
