#ifndef TOOLGATE_CLIBFUZZER_H
#define TOOLGATE_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for a program that has its own `main`. SwiftPM links every executable's entry point as
/// `main`, so toolgate-fuzz cannot use libFuzzer's `main`; it calls this instead (built with -sanitize=fuzzer,
/// which links the libFuzzer runtime).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
