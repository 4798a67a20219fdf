/* check.h: the counting check of the C unit tests. Each test file includes it once, counts with CHECK, and
 * closes by printing "N passed, N failed". */
#ifndef NVFP4_TESTS_CHECK_H
#define NVFP4_TESTS_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (cond) passed++;                                                               \
        else {                                                                            \
            failed++;                                                                     \
            printf("FAIL %s:%d: %s\n", __func__, __LINE__, #cond);                        \
        }                                                                                 \
    } while (0)

#endif
