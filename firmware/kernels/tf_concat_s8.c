/* tf_concat_s8 - see the header for the layout. */
#include "tf_concat_s8.h"

#include <string.h>

void tf_concat_s8(const int8_t *input1, int32_t inner1, const int8_t *input2, int32_t inner2,
                  int32_t outer, int8_t *output)
{
    for (int32_t o = 0; o < outer; o++) {
        memcpy(output, input1 + o * inner1, (size_t)inner1);
        memcpy(output + inner1, input2 + o * inner2, (size_t)inner2);
        output += inner1 + inner2;
    }
}
