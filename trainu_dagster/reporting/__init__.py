"""What the app shows: reads of the dbt marts (and app tables) through the signed-in
user's RLS-bound connection. Each function returns plain rows; the pages draw them."""
