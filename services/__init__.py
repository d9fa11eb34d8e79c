"""Example services: each module is one deployable service, chained to the others by stream names.

orders.placed -> [orders.validate] -> orders.valid -> [orders.bill] -> invoices
              -> [payments.charge] -> receipts
"""
