"""Major incidents (issue 19, docs/paging.md): the reports linked to a paged ticket, the status
updates their requesters get, and what the ``intaked incident`` commands do to them."""
