chmod 700 dir
