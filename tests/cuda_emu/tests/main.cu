/* The emulation's self-tests: test_cuda_emu GROUP [args]. The kernel
 * groups run in the thread order LT_CUDA_EMU_ORDER names (CTest runs them
 * in both, with both fiber switches); checks that compare orders set it
 * themselves. */
#include "check.cuh"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_cuda_emu kernels|runtime|bf16|bf16-torch IN REF|cublas|"
                        "out-of-bounds device|shared|guard\n");
        return 2;
    }
    const char *group = argv[1];
    if (strcmp(group, "kernels") == 0) {
        test_barriers();
        test_warp();
    } else if (strcmp(group, "runtime") == 0) {
        test_runtime();
    } else if (strcmp(group, "guard") == 0) {
        return test_guard();
    } else if (strcmp(group, "out-of-bounds") == 0 && argc == 3) {
        test_out_of_bounds(argv[2]);
    } else if (strcmp(group, "bf16") == 0 || strcmp(group, "bf16-torch") == 0) {
        if (test_bf16(argc, argv) == 77)
            return 77;
    } else if (strcmp(group, "cublas") == 0) {
        test_cublas();
    } else {
        fprintf(stderr, "test_cuda_emu: unknown group %s\n", group);
        return 2;
    }
    if (emu_check_count == 0) {
        fprintf(stderr, "FAIL: no checks were run\n");
        return 1;
    }
    if (emu_check_failures) {
        fprintf(stderr, "%d of %d checks failed\n", emu_check_failures, emu_check_count);
        return 1;
    }
    printf("all %d checks passed (%s order)\n", emu_check_count, current_order());
    return 0;
}
