// Package decimal is a vendored copy of somebody else's code.
package decimal

// Zero is the decimal zero.
const Zero = 0
