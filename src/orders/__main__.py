"""``python -m orders``: the same as the ``orders`` command."""

from orders.entry import main

main()
