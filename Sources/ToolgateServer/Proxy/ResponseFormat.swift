import ToolgateCore

/// How toolgate writes the answers it makes itself: JSON unless the client accepts only an event stream.
enum ResponseFormat: Sendable {
    case json
    case eventStream

    init(accept: String?) {
        guard let accept = accept?.lowercased() else {
            self = .json
            return
        }
        let types = accept.split(separator: ",").map { $0.split(separator: ";").first.map { String($0).trimmingWhitespace } ?? "" }
        if types.contains(where: { $0.isExactly("application/json") || $0.isExactly("application/*") || $0.isExactly("*/*") }) {
            self = .json
        } else if types.contains(where: { $0.isExactly("text/event-stream") }) {
            self = .eventStream
        } else {
            self = .json
        }
    }
}
