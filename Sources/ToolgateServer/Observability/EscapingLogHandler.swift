import Logging
import ToolgateCore

/// Every log line toolgate writes goes through this: the message and every metadata value are escaped
/// (`LogFieldEscaping`), so no value from outside, wherever it is logged, can break a line or forge one.
public struct EscapingLogHandler: LogHandler {
    private var inner: any LogHandler

    public init(_ inner: any LogHandler) { self.inner = inner }

    public func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: LogFieldEscaping.escaped(event.message.description))
        if let metadata = event.metadata { event.metadata = metadata.mapValues(Self.escaped) }
        inner.log(event: event)
    }

    static func escaped(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let text): .string(LogFieldEscaping.escaped(text))
        case .stringConvertible(let convertible): .string(LogFieldEscaping.escaped(convertible.description))
        case .dictionary(let dictionary): .dictionary(dictionary.mapValues(escaped))
        case .array(let array): .array(array.map(escaped))
        @unknown default: .string(LogFieldEscaping.escaped(value.description))
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue.map(Self.escaped) }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue.mapValues(Self.escaped) }
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }
}
