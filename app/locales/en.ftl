# PatriotPay English message catalog. Every user-facing string lives here.
brand = PatriotPay
skip-to-content = Skip to main content
footer-secure = Payments are processed securely. PatriotPay never sees your card number.
footer-privacy = Your health information is encrypted and only shown after you confirm who you are.
sign-out = Sign out
field-required = Required

home-title = Pay your medical bill
home-lead = Use the secure link in the text message from your practice to view and pay your statement.
home-scam = We will never ask for your card number by text message or phone. Only enter card details on the payment page you reach from this site.

verify-title = Confirm who you are
verify-lead-practice = { $practice } uses PatriotPay to send statements. Before we show anything, please confirm who you are.
verify-lead-generic = Before we show anything, please confirm who you are.
verify-dob-legend = Patient's date of birth
verify-dob-hint = For example, 03 14 1984
verify-month = Month
verify-day = Day
verify-year = Year
verify-continue = Continue
verify-failed = We couldn't confirm those details. Check the date of birth and try again, or contact your practice.
verify-invalid-date = Enter a real date of birth, for example 03 14 1984.
verify-rate-limited = Too many attempts. Please wait an hour and try again, or contact your practice.

locked-title = This link is locked
locked-body = There were too many unsuccessful attempts to confirm who you are, so this link has been locked to protect the patient's information.
locked-next = To pay your bill, call your practice and ask them to send you a new link.
locked-next-phone = To pay your bill, call { $practice } at { $phone } and ask them to send you a new link.

zip-title = One more check
zip-lead = To see the itemised statement, enter the ZIP code of the patient's address on file.
zip-label = ZIP code
zip-hint = 5 digits, for example 60614
zip-continue = Show itemised statement
zip-failed = We couldn't confirm that ZIP code. Check it and try again.
zip-invalid = Enter a 5-digit ZIP code.

summary-title = Your statement
summary-from = Statement from { $practice }
summary-balance = Balance due
summary-due = Due { $date }
summary-dated = Statement date { $date }
summary-itemised-link = View the itemised statement
summary-paid-in-full = This statement is paid in full. Thank you.

statement-title = Itemised statement
statement-caption = Services on this statement
statement-col-date = Date of service
statement-col-description = Description
statement-col-charge = Charge
statement-col-insurance = Insurance paid
statement-col-adjustment = Adjustment
statement-col-responsibility = You owe
statement-totals = Totals
statement-payments = Payments received
statement-payment-line = { $date }: { $amount } ({ $brand } ending { $last4 })
statement-no-payments = No payments yet.
statement-back = Back to summary

pay-title = Make a payment
pay-amount-label = Amount to pay (USD)
pay-amount-hint = Pay the full balance of { $balance } or any part of it.
pay-button = Pay
pay-redirect-note = You will be taken to our card processor's secure page to enter your card.
pay-err-empty = Enter an amount to pay.
pay-err-format = Enter an amount in dollars and cents, for example 25.00.
pay-err-zero = The amount must be more than $0.00.
pay-err-negative = The amount can't be negative.
pay-err-over = The amount can't be more than the balance of { $balance }.
pay-err-nothing-due = There is nothing left to pay on this statement.
pay-err-processor = We couldn't reach the card processor. No money was taken. Please try again in a few minutes.

declined-title = Your card was declined
declined-generic = The card processor declined the card. No money was taken. You can try again with the same or a different card.
declined-funds = The card was declined for insufficient funds. No money was taken. You can try again with a different card or a smaller amount.
cancelled-title = Payment cancelled
cancelled-body = You left the payment page before paying. No money was taken.
try-again = Try again

confirming-title = Confirming your payment
confirming-body = Your card processor has accepted the payment and we are recording it. This page refreshes by itself; you can also reload it.
confirming-refresh = Check again

receipt-title = Payment received
receipt-thanks = Thank you. { $practice } has received your payment.
receipt-amount = Amount paid
receipt-date = Date
receipt-card = Card
receipt-card-value = { $brand } ending { $last4 }
receipt-reference = Reference
receipt-new-balance = Remaining balance
receipt-back = Back to statement

signed-out-title = You're signed out
signed-out-body = To see your statement again, open the link from your text message.
expired-title = Your session has ended
expired-body = For your privacy we sign you out after a period of inactivity. Open the link from your text message to continue.

error-title-404 = Page not found
error-title-403 = Not allowed
error-title-400 = Something was wrong with that request
error-title-413 = That request was too large
error-title-429 = Too many requests
error-title-500 = Something went wrong
error-title-503 = Temporarily unavailable
error-body = If you contact support, quote this reference:
error-home = Go to the home page

sandbox-title = Sandbox checkout
sandbox-banner = Test mode. This is PatriotPay's built-in sandbox card processor; no real money moves.
sandbox-pay-to = Pay { $merchant }
sandbox-amount = Amount
sandbox-card-number = Card number
sandbox-card-hint = Use a test card: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient funds.
sandbox-exp = Expiry (MM / YY)
sandbox-cvc = CVC
sandbox-pay = Pay
sandbox-cancel = Cancel and return
sandbox-err-number = Enter a valid card number.
sandbox-err-test-card = Sandbox mode accepts only test card numbers.
sandbox-err-exp = Enter a future expiry date as MM / YY.
sandbox-err-cvc = Enter the 3 or 4 digit security code.
sandbox-closed-title = This checkout is closed
sandbox-closed-body = This checkout session has already been completed or has expired.
error-prefix = Error:
error-summary-title = There is a problem
practice-header = Billing for { $practice }
