#if TOOLGATE_TSAN
import ToolgateCore

/// The ThreadSanitizer build's `Mutex` (see `TSanVisibleMutex`); every other build uses the standard library's.
typealias Mutex<Value> = TSanVisibleMutex<Value>
#endif
