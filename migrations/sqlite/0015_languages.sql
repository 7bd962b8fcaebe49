-- Issue 17: the caller's language. A customer's language as Shopify knows it (GraphQL
-- Customer.locale: en, es, es-MX; REST copies do not carry it and never erase it) and the
-- language each order was placed in (REST customer_locale, GraphQL Order.customerLocale): a
-- known caller hears the first word in their language when the line speaks it.
ALTER TABLE customers ADD COLUMN locale TEXT;
ALTER TABLE orders ADD COLUMN customer_locale TEXT;
