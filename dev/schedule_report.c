/* schedule_report.c: the Hopper kernel's stream-K schedule (kernels/hopper_schedule.h) on the benchmark shapes,
 * without a GPU: per shape the token chunks and their widths, the unit count, the padding ratio, the balance of
 * modelled cost and of MMA work over the CTAs, and the pieces.
 *
 *     schedule_report [P]      P CTAs, one per SM (default 132, an H200)
 */
#include <stdio.h>
#include <stdlib.h>

#include "hopper_schedule.h"

#define DEFAULT_CTAS 132
#define MAX_GROUPS 64

typedef struct shape {
    const char *name;
    int32_t groups, n, k;
    int32_t m[MAX_GROUPS];
} shape;

/* The leaderboard's four benchmark specs, then bench/bench.py's two MoE extras. Their M lists are what bench.py
 * draws: rng = random.Random(32); [0, 0] + [rng.randint(0, 300) for _ in range(30)], then, from the same rng,
 * [rng.randint(0, 40) for _ in range(64)]. */
static const shape SHAPES[] = {
    {"spec 1", 8, 4096, 7168, {80, 176, 128, 72, 64, 248, 96, 160}},
    {"spec 2", 8, 7168, 2048, {40, 76, 168, 72, 164, 148, 196, 160}},
    {"spec 3", 2, 3072, 4096, {192, 320}},
    {"spec 4", 2, 4096, 1536, {128, 384}},
    {"MoE G=32 M 0..300", 32, 4096, 7168,
     {0, 0, 39, 109, 74, 155, 121, 254, 12, 19, 51, 166, 260, 169, 29, 267,
      240, 189, 0, 277, 64, 268, 4, 248, 103, 147, 103, 228, 41, 171, 61, 18}},
    {"MoE G=64 M 0..40", 64, 7168, 2048,
     {33, 7, 10, 28, 1, 27, 3, 2, 35, 22, 14, 10, 29, 19, 31, 10, 34, 19, 36, 36, 36, 5,
      2, 37, 18, 14, 18, 21, 5, 15, 25, 18, 27, 4, 30, 0, 11, 28, 10, 5, 3, 8, 16, 3,
      35, 19, 9, 24, 3, 12, 37, 2, 31, 0, 32, 33, 20, 23, 31, 30, 15, 39, 20, 33}},
};

/* "m:w+w" per group, e.g. 320:112+112+96; a group without tokens prints 0:-. */
static void print_chunks(const shape *sh, int32_t limit) {
    int column = 0;
    for (int32_t g = 0; g < sh->groups; g++) {
        char text[64];
        int len = snprintf(text, sizeof text, "%d:", sh->m[g]);
        const int32_t chunks = hopper_chunks(sh->m[g], limit);
        if (chunks == 0) len += snprintf(text + len, sizeof text - (size_t)len, "-");
        for (int32_t c = 0; c < chunks; c++)
            len += snprintf(text + len, sizeof text - (size_t)len, "%s%d", c ? "+" : "", hopper_chunk_width(sh->m[g], limit, c));
        if (column + len + 1 > 100) printf("\n"), column = 0;
        column += printf("%s%s", column ? " " : "    ", text);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    const int32_t ctas = argc > 1 ? (int32_t)atoi(argv[1]) : DEFAULT_CTAS; /* init rejects P < 1 */
    printf("P = %d CTAs; cost per k-block = width + %d; pieces of at least %d k-blocks at unit edges\n"
           "unless that moves a boundary by more than 1/%d of a CTA's share\n",
           ctas, HOPPER_COST_FIXED, HOPPER_MIN_PIECE_KBLOCKS, HOPPER_SNAP_SHARE_DIVISOR);
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const shape *sh = &SHAPES[i];
        hopper_problem problems[MAX_GROUPS];
        hopper_prefix prefix[MAX_GROUPS + 1];
        for (int32_t g = 0; g < sh->groups; g++) problems[g] = (hopper_problem){sh->m[g], sh->n, sh->k, 1, 0};
        const int32_t chunk_rows = hopper_choose_chunk_rows(problems, sh->groups, ctas);
        for (int32_t g = 0; g < sh->groups; g++) problems[g].chunk_rows = chunk_rows;
        hopper_schedule s;
        if (hopper_schedule_init(&s, problems, prefix, sh->groups, ctas) != 0) {
            fprintf(stderr, "%s: rejected (P = %d)\n", sh->name, ctas);
            return 1;
        }
        const hopper_report r = hopper_schedule_report(&s);
        printf("\n%s: G=%d N=%d K=%d, %lld units of %d k-blocks, cost %lld (%.1f k-blocks of width %d per CTA)\n",
               sh->name, sh->groups, sh->n, sh->k, (long long)s.total_units, sh->k / HOPPER_KBLOCK_K,
               (long long)s.total_cost,
               (double)s.total_cost / ctas / (double)hopper_kblock_cost(HOPPER_CHUNK_MAX_ROWS), HOPPER_CHUNK_MAX_ROWS);
        printf("  chunk widths (m:widths, chunks of at most %d rows: hopper_choose_chunk_rows):\n", chunk_rows);
        print_chunks(sh, chunk_rows);
        printf("  padding %.4f  cost balance %.4f  MMA balance %.4f (cost model allows %.4f)\n", r.padding,
               r.cost_balance, r.mma_balance, r.mma_balance_bound);
        printf("  pieces %lld  partial pieces %lld  empty CTAs %lld\n", (long long)r.pieces, (long long)r.partial_pieces,
               (long long)r.empty_ctas);
        /* Whether the kernel runs whole units instead (hopper_whole_units_fit), and that schedule's balance. */
        int64_t widest_cost = 0, widest_mma = 0;
        double mma_total = 0;
        for (int32_t g = 0; g < sh->groups; g++) {
            const hopper_shape shp = hopper_problem_shape(&problems[g]);
            if (shp.chunks == 0) continue;
            if (shp.full_cost > widest_cost) widest_cost = shp.full_cost;
            if ((int64_t)shp.base * shp.kblocks > widest_mma) widest_mma = (int64_t)shp.base * shp.kblocks;
            mma_total += (double)shp.slices * shp.tiles * (double)shp.tile_width * shp.kblocks;
        }
        if (hopper_whole_units_fit(s.total_units, s.total_cost, widest_cost, ctas))
            printf("  runs whole units instead (one per CTA): cost balance %.4f  MMA balance %.4f\n",
                   (double)widest_cost * ctas / (double)s.total_cost, (double)widest_mma * ctas / mma_total);
        else
            printf("  runs the stream-K split above (whole units: %s)\n",
                   s.total_units > ctas ? "more units than CTAs" : "the costliest unit is over 1.05 of an even share");
    }
    return 0;
}
