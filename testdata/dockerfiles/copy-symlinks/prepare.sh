ln -s file.txt link-to-file
ln -s tree link-to-dir
ln -s a.txt tree/inner-link
ln -s ../file.txt tree/sub/up-link
ln -s /etc/passwd tree/abs-link
ln -s missing tree/dangling
