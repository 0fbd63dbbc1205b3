/// How every message writes a duration: "850 ms", "4.99 s", "10 s", "2 min 5 s",
/// never Duration's own "4.991634048999999 seconds".
package func formatDuration(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let totalMilliseconds = seconds * 1000 + (attoseconds + 500_000_000_000_000) / 1_000_000_000_000_000
    if totalMilliseconds < 0 { return "-" + formatDuration(.zero - duration) }
    if totalMilliseconds < 1000 { return "\(totalMilliseconds) ms" }
    let hundredths = (totalMilliseconds + 5) / 10
    if hundredths < 100 * 100 {
        // Up to 99.99 s: two decimals, without trailing zeros ("2.5 s", "10 s").
        var text = "\(hundredths / 100)"
        let fraction = hundredths % 100
        if fraction != 0 {
            text += fraction % 10 == 0 ? ".\(fraction / 10)" : (fraction < 10 ? ".0\(fraction)" : ".\(fraction)")
        }
        return text + " s"
    }
    let wholeSeconds = (totalMilliseconds + 500) / 1000
    if wholeSeconds < 600 {
        return wholeSeconds % 60 == 0 ? "\(wholeSeconds / 60) min" : "\(wholeSeconds / 60) min \(wholeSeconds % 60) s"
    }
    let minutes = (wholeSeconds + 30) / 60
    if minutes < 60 { return "\(minutes) min" }
    return minutes % 60 == 0 ? "\(minutes / 60) h" : "\(minutes / 60) h \(minutes % 60) min"
}
