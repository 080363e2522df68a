#ifndef TOOLGATE_CPCRE2_SHIM_H
#define TOOLGATE_CPCRE2_SHIM_H
// PCRE2 10.42 (Debian libpcre2-dev), the 8-bit library: patterns and subjects are UTF-8 bytes.
// pcre2.h needs the code unit width before it is included. Its unsuffixed names (pcre2_compile, pcre2_match, ...)
// are C macros, which Swift does not import: Swift calls the width-suffixed functions (pcre2_compile_8, ...).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
