/* A quantized tensor's parts as the Python references read them from an
 * LTT1 archive: <prefix>codes (bytes as int32), <prefix>absmax (float32, or
 * int32 codes with double quantization), <prefix>absmax2, <prefix>offset. */
#ifndef LT_TESTS_QUANT_EXPORT_H
#define LT_TESTS_QUANT_EXPORT_H

#include "model/quant.h"
#include "tests/lib/tensorfile.h"

void tf_add_qtensor(tf_archive *a, const char *prefix, const lt_qtensor *t, const uint8_t *blob);

#endif
