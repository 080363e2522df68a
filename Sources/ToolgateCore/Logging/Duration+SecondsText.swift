extension Duration {
    /// Seconds with three decimals (`0.020`), for log fields whose key names the unit (`seconds=0.020`): a
    /// `Duration`'s own text (`0.0203 seconds`) would repeat the unit and vary in precision.
    public var secondsText: String {
        let (seconds, attoseconds) = components
        let millis = max(0, seconds * 1_000 + attoseconds / 1_000_000_000_000_000)
        let (whole, fraction) = millis.quotientAndRemainder(dividingBy: 1_000)
        let digits = String(fraction)
        return String(whole) + "." + String(repeating: "0", count: 3 - digits.count) + digits
    }
}
