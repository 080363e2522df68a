// libyaml, which Yams is built on (Yams's own dependency; its events are what `compose` consumes).
internal import CYaml

/// Where a YAML document first uses an alias, found with libyaml's event parser before Yams composes it. Yams
/// substitutes every alias with the node it names, so ten lines of nested aliases stand for 10^10 nodes (the
/// "billion laughs"): converting them, or hashing one used as a mapping key, would never end. Policies and grants
/// files do not support aliases, so the first one is refused before anything is composed. Linear in the text.
enum YAMLAliasScan {
    /// The 1-based line and column of the first alias, or nil when there is none (or the text is not YAML, which
    /// Yams then reports with its own message).
    static func firstAlias(in text: String) -> (line: Int, column: Int)? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer -> (line: Int, column: Int)? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var event = yaml_event_t()
            while yaml_parser_parse(&parser, &event) == 1 {
                let type = event.type
                let mark = event.start_mark
                yaml_event_delete(&event)
                if type == YAML_ALIAS_EVENT { return (mark.line + 1, mark.column + 1) }
                if type == YAML_STREAM_END_EVENT { return nil }
            }
            return nil
        }
    }
}
