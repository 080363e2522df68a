/// The one path every upstream answer takes to the agent, as a state machine with no I/O: the proxy feeds
/// it the head, the body's chunks and the body's end, and writes what it returns. Its stages:
/// - **list filtering** (fails closed): every relayed message whose `result.tools` is an array is filtered;
///   an event whose data is not JSON is dropped; a JSON body that should answer `tools/list` and does not
///   parse becomes a -32603 error;
/// - **absent-name probes**: the answer to a request sent about a stand-in name (`AbsentNameProbe`) gets the
///   agent's names back, wherever it echoes the stand-in;
/// - **local-answer merging**: batch elements toolgate answered itself join the upstream's answers;
/// - **early-end detection**: requests left unanswered when an event stream ends get a -32603 event each;
///   a JSON or opaque body that breaks is aborted, never passed off as complete;
/// - **refund decision** (`RefundRule`): only an up-front 4xx refusal refunds;
/// - **multi-round calls**: an `input_required` answer to a forwarded `tools/call` hands the agent a `requestState`
///   the proxy remembers (`takeRelayedRounds`) before the agent can see it, so its follow-up is not charged again.
public struct ResponseRelay: Sendable {
    /// What the proxy forwarded, as far as the answer is concerned.
    public struct Plan: Sendable {
        /// Ids of the forwarded requests, each of which the upstream owes an answer.
        public var requestIDs: [JSONValue] = []
        /// Whether the body holds a `tools/list` request: its answer must be filtered or replaced, never passed.
        public var listsTools = false
        /// Batch elements toolgate answered itself.
        public var localAnswers: [JSONValue] = []
        /// The forwarded `tools/call` requests.
        public var toolCalls: [ForwardedToolCall] = []
        /// Requests sent about a stand-in for a name the policy keeps out: their answers get the names back.
        public var probes: [AbsentNameProbe] = []

        public init(
            requestIDs: [JSONValue] = [], listsTools: Bool = false, localAnswers: [JSONValue] = [], toolCalls: [ForwardedToolCall] = [],
            probes: [AbsentNameProbe] = []
        ) {
            self.requestIDs = requestIDs
            self.listsTools = listsTools
            self.localAnswers = localAnswers
            self.toolCalls = toolCalls
            self.probes = probes
        }
    }

    /// A `tools/call` toolgate let through, by its id.
    public struct ForwardedToolCall: Sendable, Equatable {
        public let id: JSONValue
        public let tool: String
        public let arguments: JSONValue

        public init(id: JSONValue, tool: String, arguments: JSONValue) {
            self.id = id
            self.tool = tool
            self.arguments = arguments
        }
    }

    /// An `input_required` answer relayed to the agent: the state its follow-up will carry.
    public struct RelayedRound: Sendable, Equatable {
        public let tool: String
        public let arguments: JSONValue
        public let requestState: String
    }

    public enum Mode: Sendable, Equatable {
        /// `text/event-stream`: relayed event by event.
        case eventStream
        /// `application/json`: read whole (bounded), then filtered, merged and judged.
        case json
        /// Anything else, unless it answers `tools/list` or forwarded requests: relayed as it comes.
        case opaque
        /// Requests were forwarded and the answer is neither JSON nor an event stream (a 404 page from a wrong
        /// `--upstream` path, say): read (bounded), then replaced by a JSON-RPC error for each request, naming the
        /// upstream's status (DESIGN.md section 3).
        case notJSONRPC
    }

    /// How the relay ends.
    public struct Ending: Sendable, Equatable {
        /// Bytes to write before the end (error events, or the whole JSON body).
        public var bytes: [UInt8] = []
        /// End the agent's response with a transport error instead of a clean end.
        public var abort = false
        /// Give the call's limits back.
        public var refund = false
        /// For a JSON body: the status and content type to answer with, when they differ from the upstream's.
        public var status: Int?
        public var contentType: String?
        /// Why the body was replaced or cut, for the log.
        public var problem: String?
        /// The upstream's answer was not JSON-RPC and was replaced by errors: the proxy logs (throttled) and counts it.
        public var replacedNotJSONRPC = false
    }

    public let plan: Plan
    public let status: Int
    public let mode: Mode
    /// The upstream's content type as it said it, for messages.
    public let contentType: String
    /// Largest JSON body read whole.
    public let maximumJSONBytes: Int
    private let filter: ToolListFilter
    private var parser = SSEParser()
    private var buffered: [UInt8] = []
    /// Forwarded requests the upstream has not answered yet.
    private var unansweredIDs: [JSONValue]
    /// Forwarded `tools/call`s whose first answer has not come yet; a second answer to one id changes nothing.
    private var openToolCalls: [ForwardedToolCall]
    /// `input_required` answers seen and not yet taken by the proxy.
    private var relayedRounds: [RelayedRound] = []
    /// Events dropped because their data was not JSON.
    public private(set) var droppedEvents = 0
    /// The upstream's own tool list (before filtering), when the answer carried one: what the policy can be held
    /// against without toolgate ever asking the upstream itself.
    public private(set) var upstreamTools: [JSONValue]?
    /// The list has more pages (`nextCursor`): `upstreamTools` is only part of it.
    public private(set) var upstreamToolsContinue = false
    private var finished = false

    public init(plan: Plan, status: Int, contentType: String?, filter: ToolListFilter, maximumJSONBytes: Int = 32 << 20) {
        self.plan = plan
        self.status = status
        self.filter = filter
        self.maximumJSONBytes = maximumJSONBytes
        unansweredIDs = plan.requestIDs
        openToolCalls = plan.toolCalls
        self.contentType = contentType ?? ""
        let type = contentType ?? ""
        if type.hasPrefixIgnoringASCIICase("text/event-stream") {
            mode = .eventStream
        } else if type.hasPrefixIgnoringASCIICase("application/json") || type.lowercased().contains("+json") || plan.listsTools {
            // An answer to tools/list is read and judged whatever type it claims: a lenient client might parse it.
            mode = .json
        } else if !plan.requestIDs.isEmpty {
            mode = .notJSONRPC
        } else {
            mode = .opaque
        }
    }

    /// Bytes to send before the upstream's body: toolgate's own answers, as one event, on a stream.
    public func start() -> [UInt8] {
        guard mode == .eventStream, !plan.localAnswers.isEmpty else { return [] }
        return SSEEvent.message(.array(plan.localAnswers)).encoded()
    }

    public enum Failure: Error, Sendable, Equatable {
        case eventTooLarge(Int)
        case bodyTooLarge(Int)
    }

    /// One chunk of the upstream's body; returns what to relay now.
    public mutating func receive(_ chunk: [UInt8]) throws(Failure) -> [UInt8] {
        switch mode {
        case .opaque:
            return chunk
        case .notJSONRPC:
            // Only its start is kept, for the log: the agent gets errors, never this body.
            if buffered.count < 512 { buffered += chunk.prefix(512 - buffered.count) }
            return []
        case .json:
            buffered += chunk
            guard buffered.count <= maximumJSONBytes else { throw .bodyTooLarge(maximumJSONBytes) }
            return []
        case .eventStream:
            let events: [SSEEvent]
            do {
                events = try parser.feed(chunk)
            } catch {
                throw .eventTooLarge(parser.maximumEventBytes)
            }
            var out: [UInt8] = []
            for event in events { out += relayed(event) }
            return out
        }
    }

    private mutating func relayed(_ event: SSEEvent) -> [UInt8] {
        guard !event.data.isEmpty else { return event.encoded() }
        guard var message = try? JSONParser.parse(event.data) else {
            droppedEvents += 1
            return []
        }
        let restored = AbsentNameProbe.restore(body: message, probes: plan.probes)
        if let restored { message = restored }
        noteRounds(in: message)
        noteAnswers(in: message)
        if plan.listsTools { noteTools(in: message) }
        guard let changed = filter.filter(body: message) ?? restored else { return event.encoded() }
        var rewritten = event
        rewritten.data = JSONWriter.string(changed)
        rewritten.raw = []
        return rewritten.encoded()
    }

    private mutating func noteAnswers(in body: JSONValue) {
        let messages: [JSONValue]
        if case .array(let elements) = body { messages = elements } else { messages = [body] }
        for case .object(let object) in messages where object["method"] == nil && !unansweredIDs.isEmpty {
            if object["result"] != nil || object["error"] != nil, let id = object["id"],
                let index = unansweredIDs.firstIndex(of: id)
            {
                unansweredIDs.remove(at: index)
            }
        }
    }

    /// Records the `requestState` of each first answer to a forwarded `tools/call` that is `input_required`.
    private mutating func noteRounds(in body: JSONValue) {
        guard !openToolCalls.isEmpty else { return }
        for case .object(let object) in body.arrayValue ?? [body] where object["method"] == nil {
            guard object["result"] != nil || object["error"] != nil, let id = object["id"],
                let index = openToolCalls.firstIndex(where: { $0.id == id })
            else { continue }
            let call = openToolCalls.remove(at: index)
            guard let result = object["result"], result["resultType"]?.stringValue == "input_required",
                let state = result["requestState"]?.stringValue
            else { continue }
            relayedRounds.append(RelayedRound(tool: call.tool, arguments: call.arguments, requestState: state))
        }
    }

    /// The `input_required` answers seen since the last call: the proxy remembers them before relaying further.
    public mutating func takeRelayedRounds() -> [RelayedRound] {
        defer { relayedRounds = [] }
        return relayedRounds
    }

    /// The upstream's body ended cleanly.
    public mutating func finish() -> Ending {
        guard !finished else { return Ending() }
        finished = true
        switch mode {
        case .opaque:
            return Ending()
        case .notJSONRPC:
            return notJSONRPC()
        case .eventStream:
            // An event cut off without its blank line is discarded, as an event-stream client would.
            return unanswered(because: "upstream stream ended before the answer")
        case .json:
            if plan.listsTools, let value = try? JSONParser.parse(buffered) { noteTools(in: value) }
            return judgeJSON()
        }
    }

    private mutating func noteTools(in body: JSONValue) {
        for message in body.arrayValue ?? [body] {
            if let tools = message["result"]?["tools"]?.arrayValue { upstreamTools = (upstreamTools ?? []) + tools }
            if let next = message["result"]?["nextCursor"], next != .null { upstreamToolsContinue = true }
        }
    }

    /// The upstream's body broke (reset, truncated, idle timeout, oversized event).
    public mutating func fail(_ reason: String) -> Ending {
        guard !finished else { return Ending() }
        finished = true
        switch mode {
        case .eventStream:
            var ending = unanswered(because: "upstream stream ended before the answer")
            ending.problem = reason
            return ending
        case .json, .opaque:
            return Ending(abort: true, problem: reason)
        case .notJSONRPC:
            var ending = notJSONRPC()
            ending.problem = (ending.problem ?? "") + "; then the body broke: " + reason
            return ending
        }
    }

    private func notJSONRPC() -> Ending {
        let type = contentType.isEmpty ? "no content type" : contentType
        var ending = replaced(
            problem: "upstream answered HTTP \(status) (\(type)) instead of JSON-RPC; is --upstream the MCP endpoint?")
        // Only what the upstream's status itself proves: a request-validation refusal is a JSON-RPC error, which
        // this is not, so no refund.
        ending.refund = false
        return ending
    }

    private func unanswered(because message: String) -> Ending {
        var bytes: [UInt8] = []
        for id in unansweredIDs {
            bytes += SSEEvent.message(JSONRPCResponse.error(id: id, code: .internalError, message: message)).encoded()
        }
        return Ending(bytes: bytes)
    }

    private mutating func judgeJSON() -> Ending {
        var ending = Ending()
        let value: JSONValue?
        if buffered.isEmpty {
            value = nil
        } else if !plan.listsTools && plan.localAnswers.isEmpty && plan.probes.isEmpty && !(400..<500).contains(status)
            && !filter.mayContainList(buffered) && Self.startsLikeAContainer(buffered)
            && (plan.toolCalls.isEmpty || !buffered.containsBytes(of: "\"input_required\""))
        {
            // Nothing to filter, merge or judge: the bytes go as they came. (A body that does not even start like
            // a JSON object or array is judged below: it is no JSON-RPC answer.)
            ending.bytes = buffered
            return ending
        } else {
            value = try? JSONParser.parse(buffered)
            if value == nil, !(plan.requestIDs.isEmpty && plan.localAnswers.isEmpty) {
                // An answer that may hold a tool list and cannot be read is not passed on; nor is one the agent's
                // client could not read as JSON-RPC.
                return replaced(problem: "upstream answered HTTP \(status) with a body that is not JSON")
            }
        }
        ending.refund = RefundRule.refunds(status: status, body: value)
        if let value { noteRounds(in: value) }
        var out = value
        if let value, let restored = AbsentNameProbe.restore(body: value, probes: plan.probes) { out = restored }
        if let current = out, let changed = filter.filter(body: current) { out = changed }
        if !plan.localAnswers.isEmpty {
            var merged: [JSONValue] = []
            switch out {
            case .array(let elements)?: merged = elements
            case let single?: merged = [single]
            case nil: break
            }
            merged += plan.localAnswers
            ending.bytes = JSONWriter.bytes(.array(merged))
            ending.contentType = "application/json"
            // Notifications alone get 202 with no body; toolgate's answers make it a 200.
            if status == 202 || buffered.isEmpty { ending.status = 200 }
            return ending
        }
        if let out, out != value { ending.bytes = JSONWriter.bytes(out) } else { ending.bytes = buffered }
        return ending
    }

    private static func startsLikeAContainer(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) else { return false }
        return first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
    }

    /// A -32603 error for every forwarded request, plus toolgate's own answers.
    private func replaced(problem: String) -> Ending {
        let errors = plan.requestIDs.map { JSONRPCResponse.error(id: $0, code: .internalError, message: problem) }
        let all = errors + plan.localAnswers
        let body: JSONValue = all.count == 1 && plan.localAnswers.isEmpty ? all[0] : .array(all)
        return Ending(
            bytes: JSONWriter.bytes(body), status: 200, contentType: "application/json", problem: problem, replacedNotJSONRPC: true)
    }
}
