// Only a declaration lives here (include/CLibFuzzer.h): the function is libFuzzer's, linked by -sanitize=fuzzer.
