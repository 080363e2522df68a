#if TOOLGATE_TSAN
import ToolgateCore

/// The ThreadSanitizer build's `Mutex` (see `TSanVisibleMutex`), here too: `@testable` imports bring in the tested
/// module's, which would otherwise be ambiguous with the standard library's.
typealias Mutex<Value> = TSanVisibleMutex<Value>
#endif
