#ifndef TOOLGATE_CHIREDIS_SHIM_H
#define TOOLGATE_CHIREDIS_SHIM_H
// hiredis 0.14 (Debian libhiredis-dev). The variadic redisCommand is not callable from Swift:
// use redisCommandArgv / redisAppendCommandArgv, which are binary-safe.
#include <hiredis/hiredis.h>
#endif
