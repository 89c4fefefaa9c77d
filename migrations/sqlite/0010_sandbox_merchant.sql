-- The sandbox's hosted page names the practice being paid, as Stripe Checkout shows the line
-- item's description. NULL (setup-mode pages, older rows): the sandbox's own name.
ALTER TABLE sandbox_sessions ADD COLUMN merchant TEXT;
