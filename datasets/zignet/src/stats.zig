const std = @import("std");

/// Arithmetic mean of `values`; 0 for an empty slice.
pub fn mean(values: []const u32) f64 {
    if (values.len == 0) return 0;
    var sum: u64 = 0;
    for (values) |v| {
        sum += v;
    }
    return @as(f64, @floatFromInt(sum)) / @as(f64, @floatFromInt(values.len));
}

/// Percentage of `part` in `whole`, rounded down to a whole number.
pub fn percent(part: usize, whole: usize) u8 {
    std.debug.assert(whole > 0);
    const ratio = @as(f64, @floatFromInt(part)) / @as(f64, @floatFromInt(whole));
    return @intFromFloat(@floor(ratio * 100.0));
}

/// Clamps `x` to the closed range [lo, hi].
pub fn clamp(x: i64, lo: i64, hi: i64) i64 {
    return @max(lo, @min(x, hi));
}

test "mean of three values" {
    const values = [_]u32{ 1, 2, 3 };
    try std.testing.expectEqual(@as(f64, 2), mean(&values));
}
