#ifndef CCAT_FUZZ_DRIVER_H
#define CCAT_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's driver (libclang_rt.fuzzer, linked by -sanitize=fuzzer): parses the command line and
   runs `callback` on each input. Called from the target's own entry point, because SwiftPM names
   an executable's entry point <module>_main. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
