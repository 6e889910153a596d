package ledger

/**
 * One line of an invoice: a description, a quantity and a unit price in cents.
 */
data class InvoiceLine(val description: String, val quantity: Int, val unitCents: Long) {
    /** The line's total in cents: the quantity times the unit price. */
    fun totalCents(): Long = quantity * unitCents
}

/**
 * An invoice made of lines, with a tax rate in basis points (2000 is 20 %).
 */
class Invoice(private val lines: List<InvoiceLine>, private val taxBasisPoints: Int) {
    /**
     * The sum of every line before tax, in cents; an invoice without lines is zero.
     */
    fun subtotalCents(): Long = lines.sumOf { it.totalCents() }

    /**
     * The tax on the subtotal in cents, rounded half up to the nearest cent so that
     * the invoice total matches what an accountant computes by hand.
     */
    fun taxCents(): Long = (subtotalCents() * taxBasisPoints + 5_000) / 10_000

    fun totalCents(): Long = subtotalCents() + taxCents()
}
