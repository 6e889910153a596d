const std = @import("std");
const mem = std.mem;

/// Counts the words of `line`, separated by spaces or tabs.
pub fn countWords(line: []const u8) usize {
    var words = mem.tokenizeAny(u8, line, " \t");
    var count: usize = 0;
    while (words.next()) |_| {
        count += 1;
    }
    return count;
}

/// Returns `name` without surrounding whitespace, or error.Empty when nothing is left.
pub fn cleanName(name: []const u8) ![]const u8 {
    const trimmed = mem.trim(u8, name, " \t\r\n");
    if (trimmed.len == 0) return error.Empty;
    return trimmed;
}

/// Joins `parts` with `sep` into memory owned by the caller.
pub fn join(allocator: mem.Allocator, parts: []const []const u8, sep: []const u8) ![]u8 {
    return mem.join(allocator, sep, parts);
}
