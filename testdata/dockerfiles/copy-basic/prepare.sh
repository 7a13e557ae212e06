chmod 755 tool.sh
chmod 750 conf
